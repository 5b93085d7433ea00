// The whole test suite: every workspace folder that has a jest.config.js.
/** @type {import('jest').Config} */
export default {
  // Two workers even on two cores: most tests wait on fsync, sockets and
  // child processes, not on the CPU (jest's default would be one, in band).
  maxWorkers: 2,
  // The default report, then one plain `tests: N passed, N failed` line.
  reporters: ['default', '<rootDir>/scripts/jest-summary-reporter.js'],
  projects: ['<rootDir>/{packages,apps,internal,tests}/*/jest.config.js'],
};
