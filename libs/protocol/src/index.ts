export * from './constants.js';
export * from './errors.js';
export * from './messages.js';
export * from './events.js';
export * from './lifecycle.js';
export * from './event-table.js';
