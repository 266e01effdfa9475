package gateway

import (
	"context"
	"errors"
	"net/http"
)

// Route is an endpoint an application adds to the gateway (WithRoutes): the
// layers above chain/ (crosschain, through package app) answer their own
// questions from the same Backend, with the gateway's limits, metrics, JSON
// answers and error codes.
type Route struct {
	// Pattern is a net/http ServeMux pattern with its method, e.g.
	// "GET /v1/xtx/{id}".
	Pattern string
	// Handle answers r from b: its result is written as JSON (200), its error
	// as the gateway's error answer (wrap ErrInvalid, ErrNotFound, ...).
	Handle func(ctx context.Context, b Backend, r *http.Request) (any, error)
}

// WithRoutes adds the application's routes to the gateway.
func WithRoutes(rs ...Route) Option {
	return func(s *Server) { s.extra = append(s.extra, rs...) }
}

// handleRoute serves rt.
func (s *Server) handleRoute(rt Route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := rt.Handle(r.Context(), s.b, r)
		if err == nil && v == nil {
			err = errors.New("route returned nothing")
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.reply(w, r, http.StatusOK, v)
	}
}
