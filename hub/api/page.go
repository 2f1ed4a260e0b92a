package api

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
)

// web holds the statistics page: plain HTML, CSS and JavaScript with no
// build step and no third-party code; the chart is drawn as SVG.
//
//go:embed web
var web embed.FS

// Route patterns of the statistics page.
const (
	RouteStatsPage  = "GET /stats"
	RouteStatsAsset = "GET /stats/{asset}"
)

// statsPage serves the page and its assets. The page calls only this
// hub's API, so a strict Content-Security-Policy holds. An unknown asset
// is a not-found problem, as every other error of the API.
func (s *Server) statsPage(w http.ResponseWriter, r *http.Request) {
	name := "stats.html"
	if a := r.PathValue("asset"); a != "" {
		name = a
	}
	b, err := fs.ReadFile(web, path.Join("web", path.Base(name)))
	if err != nil || name == "stats.html" && r.PathValue("asset") != "" {
		s.writeProblem(w, r, http.StatusNotFound, "not-found", "no such asset of the statistics page")
		return
	}
	h := w.Header()
	h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
