// A jest reporter that ends the run with one plain line, `tests: N passed, N failed`
// (plus `, N skipped` when some were), for tools that read a test run's last line.
// It is written on stderr as the process exits, after jest's own summary
// (stderr is synchronous for files and pipes on Linux).
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const line = `tests: ${results.numPassedTests} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`;
    process.once('exit', () => process.stderr.write(line));
  }
}
