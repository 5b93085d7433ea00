export { makeTempDir, removeTempDirs } from './temp-dir.js';
export { waitFor, sleep, type WaitForOptions } from './wait-for.js';
export { FakeClock, type FakeTimer } from './fake-clock.js';
export { listen } from './listen.js';
export { makeTestPki, type IssuedFiles, type TestPki } from './pki.js';
export { parsePrometheusText, sampleValue, type MetricFamily } from './prometheus.js';
