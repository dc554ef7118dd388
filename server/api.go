package server

import "net/http"

// APIConfig configures the server API (/api/v1 and the API Gateway
// compatible @connections routes).
type APIConfig struct {
	// Token is the bearer token; empty disables /api/v1.
	Token string
	// GatewayEvent is the event name @connections posts are emitted as.
	GatewayEvent string
	// AWSAccessKeyID and AWSSecretAccessKey enable SigV4-signed requests on
	// the @connections routes.
	AWSAccessKeyID     string
	AWSSecretAccessKey string
	// Rate is the sustained request rate per token, in requests per second;
	// Burst is how many may come at once.
	Rate  float64
	Burst int
}

type api struct {
	s   *Server
	cfg APIConfig
}

func newAPI(s *Server, cfg APIConfig) *api { return &api{s: s, cfg: cfg} }

func (a *api) routes(mux *http.ServeMux) {}
