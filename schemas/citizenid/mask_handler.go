package citizenid

import (
	"context"
	"log/slog"
)

// MaskingHandler wraps h so that anything shaped like a citizen ID in a
// record's message is masked (MaskText). It is for logs whose messages we
// do not write, such as net/http's server errors, which can quote a
// request line.
func MaskingHandler(h slog.Handler) slog.Handler { return maskingHandler{h} }

type maskingHandler struct{ slog.Handler }

func (h maskingHandler) Handle(ctx context.Context, r slog.Record) error {
	r2 := slog.NewRecord(r.Time, r.Level, MaskText(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool { r2.AddAttrs(a); return true })
	return h.Handler.Handle(ctx, r2)
}

func (h maskingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return maskingHandler{h.Handler.WithAttrs(as)}
}

func (h maskingHandler) WithGroup(name string) slog.Handler {
	return maskingHandler{h.Handler.WithGroup(name)}
}
