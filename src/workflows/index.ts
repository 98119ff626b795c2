/** Every runbook workflow the worker serves. */
export {};
export * from './rolling-restart.js';
export * from './bucket-swap.js';
export * from './db-migration.js';
export * from './region-data-update.js';
export * from './ecs-migration.js';
export * from './prod-tag-deploy.js';
export * from './terraform-apply.js';
