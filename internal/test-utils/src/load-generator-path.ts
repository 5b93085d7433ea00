import { fileURLToPath } from 'node:url';

/**
 * Absolute path of the HTTP load generator script (`load-generator.ts`), for
 * benchmarks to run in a child process with tsx; see that file for its JSON
 * argument. It prints one {@link LoadResult} line.
 */
export const loadGeneratorPath = fileURLToPath(new URL('./load-generator.ts', import.meta.url));

export type { LoadResult } from './load-generator.js';
