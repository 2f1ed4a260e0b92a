package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Sizing of the span export queue (see Config.SpanQueueSize).
const (
	// DefaultSpanQueueSize holds about three seconds of spans at 20,000
	// spans/s (an event the hub ingests under a sampled trace costs two,
	// "ingest <topic>" and "store commit", plus a share of its batch's),
	// so that a burst, or a collector slow for a moment, costs no spans.
	// An ingest span waiting for export takes about 2 KB of heap, so a
	// full queue, which only a collector that is slow or away leaves, holds
	// about 128 MB.
	DefaultSpanQueueSize = 1 << 16
	// spanBatchSize is the most spans in one OTLP export request, about
	// 1 MB of protobuf for ingest spans. Requests go one at a time, so
	// the SDK's default of 512 cost a round trip per 512 spans.
	spanBatchSize = 2048
	// flushSlack is room in the batcher's channel beyond the queue size
	// for the markers ForceFlush puts there (one per concurrent call), so
	// that they never take the place of a span.
	flushSlack = 64
)

// dropLogEvery is how often at most a drop is logged (a variable for the
// tests).
var dropLogEvery = 10 * time.Second

// Values of the reason attribute of pophub_trace_spans_dropped_total.
const (
	dropQueueFull    = "queue_full"
	dropExportFailed = "export_failed"
)

// spanPipeline is the batching span processor of the OTLP exporter with
// an admission count around it, which makes every span it loses visible.
//
// The SDK's batcher drops a span when its queue is full and only counts it
// in a field nobody reads (its own metrics need OTEL_GO_X_OBSERVABILITY and
// the global meter provider, which pophub does not set). So the pipeline
// admits a span into the batcher only if at most limit admitted spans, it
// included, have yet to reach the exporter; the batcher's channel is
// larger than limit, so the batcher itself never drops, and every span
// lost is counted here: refused at admission (queue_full) or in an export
// that failed (export_failed). Once the pipeline has shut down, ended = exported +
// dropped, over both reasons (bar spans ended while it shut down).
//
// Admission never waits. A collector that is slow or away must not slow
// ingest, whose spans are a record of the work, not the work: when the
// queue is full, the span is dropped, counted and logged, and the event
// goes on. (sdktrace.WithBlocking would make every traced ingest goroutine
// wait on the collector.)
type spanPipeline struct {
	next   sdktrace.SpanProcessor
	limit  int64
	logger *slog.Logger

	// queued counts admitted spans the exporter has not been handed yet:
	// those in the batcher's channel and in the batch it is filling.
	queued  atomic.Int64
	stopped atomic.Bool

	ended, exported, dropped    metric.Int64Counter
	queueFullOpt, exportFailOpt metric.AddOption
	reg                         metric.Registration

	// unlogged counts drops since the last log line, by reason; nextLog
	// is when, in Unix nanoseconds, the next line may be written.
	unloggedFull, unloggedFailed atomic.Int64
	nextLog                      atomic.Int64
	// logPending is set while a timer will log drops the rate limit
	// held back, so that a burst's last drops reach the log without
	// waiting for another drop.
	logPending atomic.Bool
}

// newSpanPipeline batches the spans for exp, admitting at most queueSize
// at a time, and counts them with meter.
func newSpanPipeline(exp sdktrace.SpanExporter, queueSize int, meter metric.Meter, logger *slog.Logger) (*spanPipeline, error) {
	p := &spanPipeline{
		limit:         int64(queueSize),
		logger:        logger,
		queueFullOpt:  metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", dropQueueFull))),
		exportFailOpt: metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", dropExportFailed))),
	}
	var err error
	var errs []error
	p.ended, err = meter.Int64Counter("pophub.trace.spans.ended", metric.WithUnit("{span}"),
		metric.WithDescription("Sampled spans ended for export to the OTLP collector; each is in time exported or dropped."))
	errs = append(errs, err)
	p.exported, err = meter.Int64Counter("pophub.trace.spans.exported", metric.WithUnit("{span}"),
		metric.WithDescription("Spans the OTLP collector accepted."))
	errs = append(errs, err)
	p.dropped, err = meter.Int64Counter("pophub.trace.spans.dropped", metric.WithUnit("{span}"),
		metric.WithDescription("Spans never exported, by reason: queue_full (the export queue was full: the collector is slower than the hub makes spans, or away) or export_failed (the collector refused the export request or did not answer it in time)."))
	errs = append(errs, err)
	queued, err := meter.Int64ObservableGauge("pophub.trace.spans.queued", metric.WithUnit("{span}"),
		metric.WithDescription("Ended spans waiting in the export queue."))
	errs = append(errs, err)
	capacity, err := meter.Int64ObservableGauge("pophub.trace.spans.queue.capacity", metric.WithUnit("{span}"),
		metric.WithDescription("How many ended spans the export queue holds; spans beyond it are dropped (reason queue_full)."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("creating trace export metrics: %w", err)
	}
	p.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(queued, p.queued.Load())
		o.ObserveInt64(capacity, p.limit)
		return nil
	}, queued, capacity)
	if err != nil {
		return nil, fmt.Errorf("registering trace queue gauges: %w", err)
	}
	// Every series shows from the start, so that increase() sees the
	// first drop.
	ctx := context.Background()
	p.ended.Add(ctx, 0)
	p.exported.Add(ctx, 0)
	p.dropped.Add(ctx, 0, p.queueFullOpt)
	p.dropped.Add(ctx, 0, p.exportFailOpt)

	p.next = sdktrace.NewBatchSpanProcessor(countingExporter{SpanExporter: exp, p: p},
		sdktrace.WithMaxQueueSize(queueSize+flushSlack),
		sdktrace.WithMaxExportBatchSize(min(spanBatchSize, queueSize)),
	)
	return p, nil
}

// OnStart passes the span on; the batcher ignores it.
func (p *spanPipeline) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) { p.next.OnStart(ctx, s) }

// OnEnd admits a sampled span to the batcher if the queue has room, and
// otherwise counts it dropped. It never blocks. Unsampled spans, which the
// batcher would ignore, and spans ended after Shutdown are neither
// exported nor counted.
func (p *spanPipeline) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() || p.stopped.Load() {
		return
	}
	ctx := context.Background()
	p.ended.Add(ctx, 1)
	// A span is admitted only if, counted in, the admitted spans not yet
	// exported stay within limit; concurrent ends may each see the other's
	// increment and both drop, which errs on the side of room.
	if p.queued.Add(1) > p.limit {
		p.queued.Add(-1)
		p.dropped.Add(ctx, 1, p.queueFullOpt)
		p.unloggedFull.Add(1)
		p.logDrops(nil, false)
		return
	}
	p.next.OnEnd(s)
}

// ForceFlush exports the spans queued so far.
func (p *spanPipeline) ForceFlush(ctx context.Context) error { return p.next.ForceFlush(ctx) }

// Shutdown exports the queued spans, stops the exporter and logs drops not
// yet logged.
func (p *spanPipeline) Shutdown(ctx context.Context) error {
	p.stopped.Store(true)
	err := p.next.Shutdown(ctx)
	p.logDrops(nil, true)
	return errors.Join(err, p.reg.Unregister())
}

// exportedBatch counts a batch the batcher handed to the exporter, once the
// export ended with err.
func (p *spanPipeline) exportedBatch(ctx context.Context, n int64, err error) {
	if err == nil {
		p.exported.Add(ctx, n)
		return
	}
	p.dropped.Add(ctx, n, p.exportFailOpt)
	p.unloggedFailed.Add(n)
	p.logDrops(err, false)
}

// logDrops writes one line with the drops since the previous one, if any,
// at most once per dropLogEvery unless force. err is the failed export
// that brought it, if any.
func (p *spanPipeline) logDrops(err error, force bool) {
	now := time.Now().UnixNano()
	next := p.nextLog.Load()
	if !force && (now < next || !p.nextLog.CompareAndSwap(next, now+int64(dropLogEvery))) {
		if now < next && !p.stopped.Load() && p.logPending.CompareAndSwap(false, true) {
			time.AfterFunc(time.Duration(next-now), func() {
				p.logPending.Store(false)
				p.logDrops(nil, false)
			})
		}
		return
	}
	full, failed := p.unloggedFull.Swap(0), p.unloggedFailed.Swap(0)
	if full == 0 && failed == 0 {
		return
	}
	attrs := []any{"queue_full", full, "export_failed", failed, "queue_capacity", p.limit}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	p.logger.Warn("trace spans dropped, not exported (see pophub_trace_spans_dropped_total)", attrs...)
}

// countingExporter tells the pipeline what became of each batch.
type countingExporter struct {
	sdktrace.SpanExporter
	p *spanPipeline
}

// ExportSpans releases the spans' places in the queue, then exports them.
// A failure is returned as reportedError: the pipeline has counted and
// logged it, and the batcher hands it on to otel's error handler as well.
func (e countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	n := int64(len(spans))
	e.p.queued.Add(-n)
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.p.exportedBatch(ctx, n, err)
	if err != nil {
		return reportedError{err}
	}
	return nil
}

// reportedError is an error the span pipeline has already counted and
// logged (see ErrorHandler).
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }
