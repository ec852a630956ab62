package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"github.com/MicahParks/jwkset"
)

// The signing algorithms (JWS "alg" values) this package knows. Verify
// accepts EdDSA and RS256, and HS256 only with Config.DevHS256Secret; every
// other value, "none" included, is CodeAlgNotAllowed.
const (
	AlgEdDSA = "EdDSA" // Ed25519
	AlgRS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256
	AlgHS256 = "HS256" // HMAC with SHA-256, development only
)

// MinRSABits is the smallest RSA modulus accepted as a verification key.
const MinRSABits = 2048

// Key is a public verification key. ID is its kid: a token whose header
// names a kid is checked against the keys with that ID and the keys without
// an ID (a PEM file's keys have none), a token without a kid against every
// key of its alg's type. Public is an ed25519.PublicKey
// (for EdDSA) or an *rsa.PublicKey of at least MinRSABits (for RS256).
type Key struct {
	ID     string
	Public crypto.PublicKey
}

// verKey is a checked Key with the alg it verifies.
type verKey struct {
	id  string
	alg string
	pub crypto.PublicKey
}

// checkKey returns k as a verKey, or an error when its type or size is not
// acceptable.
func checkKey(k Key) (verKey, error) {
	switch pub := k.Public.(type) {
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return verKey{}, fmt.Errorf("key %q: Ed25519 public key of %d bytes", k.ID, len(pub))
		}
		return verKey{id: k.ID, alg: AlgEdDSA, pub: pub}, nil
	case *rsa.PublicKey:
		if pub == nil || pub.N == nil {
			return verKey{}, fmt.Errorf("key %q: empty RSA key", k.ID)
		}
		if bits := pub.N.BitLen(); bits < MinRSABits {
			return verKey{}, fmt.Errorf("key %q: RSA key of %d bits, fewer than %d", k.ID, bits, MinRSABits)
		}
		return verKey{id: k.ID, alg: AlgRS256, pub: pub}, nil
	default:
		return verKey{}, fmt.Errorf("key %q: unsupported public key type %T (want ed25519.PublicKey or *rsa.PublicKey)", k.ID, k.Public)
	}
}

// maxJWKSBytes bounds a JWKS document read from a file or a URL.
const maxJWKSBytes = 1 << 20

// parseJWKS decodes a JWK Set (RFC 7517) and returns its usable verification
// keys. Keys this package cannot use are skipped, each with a reason: kty
// other than OKP/Ed25519 or RSA, "use" other than "sig", an "alg" other than
// EdDSA or RS256, symmetric ("oct") keys, RSA keys under MinRSABits, and keys
// whose parameters do not decode. Private parameters are never read. The
// error is for a document that is not a JWK Set at all.
func parseJWKS(data []byte) (keys []verKey, skipped []string, err error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	for i, m := range set.Keys {
		k, err := parseJWK(m)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): %v", i, m.KID, err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

func parseJWK(m jwkset.JWKMarshal) (verKey, error) {
	if m.USE != "" && m.USE != jwkset.UseSig {
		return verKey{}, fmt.Errorf("use %q is not %q", m.USE, jwkset.UseSig)
	}
	if len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return verKey{}, fmt.Errorf("key_ops %q lacks %q", m.KEYOPS, jwkset.KeyOpsVerify)
	}
	// Only the public parameters go to jwkset, so private material in a
	// published set is never parsed or held.
	pub := jwkset.JWKMarshal{KTY: m.KTY, KID: m.KID, ALG: m.ALG, USE: m.USE}
	switch m.KTY {
	case jwkset.KtyOKP:
		if m.CRV != jwkset.CrvEd25519 {
			return verKey{}, fmt.Errorf("OKP curve %q is not Ed25519", m.CRV)
		}
		if m.ALG != "" && m.ALG != jwkset.AlgEdDSA {
			return verKey{}, fmt.Errorf("alg %q does not fit an Ed25519 key", m.ALG)
		}
		pub.CRV, pub.X = m.CRV, m.X
	case jwkset.KtyRSA:
		if m.ALG != "" && m.ALG != jwkset.AlgRS256 {
			return verKey{}, fmt.Errorf("alg %q is not %s", m.ALG, AlgRS256)
		}
		pub.N, pub.E = m.N, m.E
	default:
		return verKey{}, fmt.Errorf("kty %q is not supported", m.KTY)
	}
	jwk, err := jwkset.NewJWKFromMarshal(pub, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return verKey{}, err
	}
	return checkKey(Key{ID: m.KID, Public: jwk.Key()})
}

// MarshalJWKS returns the JWK Set of keys, each with its kid, its alg and
// "use":"sig": what a dev server or a test serves at its JWKS URL, or writes
// to a JWKS file.
func MarshalJWKS(keys ...Key) ([]byte, error) {
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		vk, err := checkKey(k)
		if err != nil {
			return nil, err
		}
		jwk, err := jwkset.NewJWKFromKey(vk.pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			ALG: jwkset.ALG(vk.alg), KID: vk.id, USE: jwkset.UseSig,
		}})
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	return json.Marshal(set)
}

// parsePublicKeysPEM reads every PEM block of data as a verification key
// without a kid: PUBLIC KEY (PKIX), RSA PUBLIC KEY (PKCS #1) or CERTIFICATE
// (its subject key). Any other block, a private key in particular, is an
// error, as is data without a block.
func parsePublicKeysPEM(data []byte) ([]verKey, error) {
	var keys []verKey
	for n := 0; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = c.PublicKey
			}
		default:
			err = fmt.Errorf("block type %q is not a public key or certificate", b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		k, err := checkKey(Key{Public: pub})
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return keys, nil
}
