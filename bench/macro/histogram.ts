// The histogram lives with the load generator `jitgate bench` ships (src/loadgen/); the bench harness uses the same one.
export { LatencyHistogram, meanStddev, type Percentiles } from '../../src/loadgen/latency-histogram.ts';
