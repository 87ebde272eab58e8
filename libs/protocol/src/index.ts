export * from './constants.js';
export * from './messages.js';
export * from './events.js';
export * from './lifecycle.js';
