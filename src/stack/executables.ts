/** The stack finds its programs as activities do (src/executables.ts). */
export { findOnPath, isExecutable } from '../executables.js';
