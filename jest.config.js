// The whole test suite: every workspace folder that has a jest.config.js.
/** @type {import('jest').Config} */
export default {
  projects: ['<rootDir>/{packages,apps,internal,tests}/*/jest.config.js'],
};
