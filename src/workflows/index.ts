/** Every runbook workflow the worker serves. */
export * from './rolling-restart.js';
