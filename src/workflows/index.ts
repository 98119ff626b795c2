/** Every runbook workflow the worker serves. */
export {};
