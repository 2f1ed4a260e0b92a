package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pophub/pophub/hub/telemetry"
)

// otlpFlag is --otlp of the commands that run beside the hub: publish,
// import, cdc and si-subscriber. serve and dev export the hub's spans;
// these export the department's publish and the subscriber's handler, so
// that one trace runs from the department to the subscriber's task.
type otlpFlag struct{ endpoint string }

func addOTLPFlag(f *pflag.FlagSet) *otlpFlag {
	o := &otlpFlag{}
	f.StringVar(&o.endpoint, "otlp", os.Getenv("POPHUB_OTLP"),
		"export traces to this OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318 (env POPHUB_OTLP)")
	return o
}

// traceRole says whether a command's spans may start traces.
type traceRole int

const (
	// startsTraces: a department's command starts a trace at each produce.
	startsTraces traceRole = iota
	// continuesTraces: a subscriber records only the traces the hub hands
	// on sampled, rather than a root span for every notification.
	continuesTraces
)

// setup builds the command's providers under service.name service, for
// the given role. Without --otlp the tracer provider is a no-op that
// passes the caller's trace context on unchanged, as the components' own
// defaults do. The caller must call shutdownTelemetry when the command
// ends.
func (o *otlpFlag) setup(ctx context.Context, service string, role traceRole, log *slog.Logger) (*telemetry.Telemetry, error) {
	var sampler sdktrace.Sampler // telemetry's default, ParentBased(AlwaysSample)
	if role == continuesTraces {
		sampler = sdktrace.ParentBased(sdktrace.NeverSample())
	}
	telemetry.RouteErrors(log)
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: service, OTLPEndpoint: o.endpoint, Sampler: sampler, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--otlp: %w", err)
	}
	return tel, nil
}

// shutdownTelemetry flushes the spans not yet exported. It has its own
// deadline, since the command's context may be done already (an
// interrupted cdc or si-subscriber). A failed export is logged, not
// returned: the command's work is done and its exit status says how that
// went.
func shutdownTelemetry(tel *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("flushing traces", "err", err)
	}
}
