// Liveness, readiness and the swarm's own health and metrics. /health and /ready answer without
// a token so that load balancers and process supervisors can probe them.

import { SwarmError } from '../../core/errors.ts';
import type { App, RouteDeps } from '../app.ts';

export function registerHealthRoutes(app: App, { api, metrics }: RouteDeps): void {
  app.get('/health', { config: { scope: 'public' } }, () => api.liveness());

  app.get('/ready', { config: { scope: 'public' } }, async () => {
    // A store that throws is as unready as one that says so.
    const ready = await api.ready().catch(() => false);
    if (!ready) throw new SwarmError('unavailable', 'the store is unreachable');

    return { ready: true };
  });

  app.get('/swarm/health', { config: { scope: 'read' } }, async (_request, reply) => {
    const health = await api.swarmHealth();

    // Degraded still serves: only unhealthy tells a probe to look elsewhere.
    reply.code(health.status === 'unhealthy' ? 503 : 200);
    return health;
  });

  app.get('/swarm/metrics', { config: { scope: 'read' } }, () => api.metrics());

  app.get('/metrics', { config: { scope: 'read' } }, async (_request, reply) => {
    const body = await metrics.render();
    reply.type(metrics.registry.contentType);
    return body;
  });
}
