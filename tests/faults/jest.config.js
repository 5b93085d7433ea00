import preset from '../../jest.preset.js';

export default {
  ...preset,
  displayName: 'faults',
  setupFilesAfterEnv: [...preset.setupFilesAfterEnv, '<rootDir>/jest.setup.js'],
};
