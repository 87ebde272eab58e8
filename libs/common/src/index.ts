export * from './serial-coalescer.js';
