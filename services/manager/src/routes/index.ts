import type { FastifyInstance } from 'fastify';
import type { ManagerDeps } from '../deps.js';
import { alertRoutes } from './alerts.js';
import { auditRoutes } from './audit.js';
import { authRoutes } from './auth.js';
import { identityRoutes } from './identities.js';
import { inventoryRoutes } from './inventory.js';
import { operationRoutes } from './operations.js';
import { policyRoutes } from './policies.js';

/** Every route of the API, one file per resource family. */
export function registerRoutes(app: FastifyInstance, d: ManagerDeps): void {
  authRoutes(app, d);
  identityRoutes(app, d);
  inventoryRoutes(app, d);
  policyRoutes(app, d);
  alertRoutes(app, d);
  operationRoutes(app, d);
  auditRoutes(app, d);
}
