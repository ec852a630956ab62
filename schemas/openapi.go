package schemas

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the read API (services/read), as
// it serves it at /openapi.json. A test there checks that it is valid JSON
// and lists exactly the routes the API serves.
//
//go:embed openapi.json
var OpenAPI []byte
