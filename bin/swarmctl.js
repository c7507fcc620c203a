#!/usr/bin/env node
// The swarmctl binary: registers tsx so the TypeScript sources run as they are (no build step),
// then hands over to src/cli/main.ts. `npx swarmctl …` works from a fresh clone.

import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

// The project's tsconfig, wherever the operator's working directory is.
register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });

await import('../src/cli/main.ts');
