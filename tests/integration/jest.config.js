import preset from '../../jest.preset.js';

export default {
  ...preset,
  displayName: 'integration',
  setupFilesAfterEnv: [...preset.setupFilesAfterEnv, '<rootDir>/jest.setup.js'],
};
