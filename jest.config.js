// The whole test suite: every workspace folder that has a jest.config.js.
/** @type {import('jest').Config} */
export default {
  // Two workers even on two cores: most tests wait on fsync, sockets and
  // child processes, not on the CPU (jest's default would be one, in band).
  maxWorkers: 2,
  projects: ['<rootDir>/{packages,apps,internal,tests}/*/jest.config.js'],
};
