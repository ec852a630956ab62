// Package auth authenticates and authorizes the callers of the WebSocket
// gateway and the read API.
//
// A caller proves who it is with a JWT: signed with EdDSA (Ed25519) or
// RS256 by a key from a JWK Set (a file, or a URL refreshed periodically and
// on unknown kids) or a PEM public key file. HS256 is accepted only with the
// development option Config.DevHS256Secret; "none" and every other alg never.
// exp and sub are required; iss and aud are checked when configured; clock
// skew up to Config.Leeway is tolerated.
//
// The claims the verifier reads:
//
//	{
//	  "sub":  "ada",                    // required: the author id stamped on ops
//	  "exp":  1767225600,               // required: keep it short
//	  "nbf", "iat", "iss", "aud":       // optional (iss/aud required when configured)
//	  "name": "Ada Lovelace",           // optional display name
//	  "docs": {                         // optional: without it, no document
//	    "read":  ["*"],
//	    "write": ["team-a-*", "notes-42"]
//	  }
//	}
//
// Patterns use '*' as the only wildcard, matching any run of bytes (see
// MatchDoc). Write implies read.
//
// The token travels in the HttpOnly cookie "palimpsest_token", an
// Authorization: Bearer header, or the first WebSocket message, and never in
// the URL: TokenSource.FromRequest refuses a request that has one there.
// Every error is an *Error with a stable Code ("auth.expired", ...) and never
// contains the token.
//
// The gateway's use, in short:
//
//	v, err := auth.NewVerifier(ctx, auth.Config{JWKSURL: jwksURL, Issuer: iss, Audience: "palimpsest"})
//	...
//	if !auth.OriginAllowed(r, allowedOrigins) { /* 403 */ }
//	tok, err := auth.TokenFromRequest(r) // or the first message's token
//	p, err := v.Verify(r.Context(), tok)
//	if err != nil { /* auth.CodeOf(err), auth.CodeOf(err).HTTPStatus() */ }
//	if err := p.Authorize(docID, auth.Write); err != nil { /* auth.forbidden */ }
//	expiry := time.NewTimer(p.Remaining(time.Now())) // close the connection when it fires
//
// In development, `serve` keeps an Ed25519 key in its data dir and prints a
// token for it:
//
//	key, _, err := auth.LoadOrCreateDevKey(dataDir)
//	v, err := auth.NewVerifier(ctx, auth.Config{Keys: []auth.Key{key.VerifierKey()}})
//	tok, err := auth.IssueDevToken(key, "dev", "Developer", auth.Docs{Write: []string{"*"}}, 12*time.Hour)
package auth
