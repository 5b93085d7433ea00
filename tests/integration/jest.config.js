import preset from '../../jest.preset.js';

export default { ...preset, displayName: 'integration', testTimeout: 120_000 };
