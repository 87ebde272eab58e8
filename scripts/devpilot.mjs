#!/usr/bin/env node
// `devpilot`: the control plane in the foreground, configured by its environment only (no build
// step, no local agent unless DEVPILOT_LOCAL_AGENT=true). What a service manager runs
// (deploy/devpilot.service); SIGTERM or SIGINT stops it, its children included.
import { runControlPlane } from './run-control-plane.mjs';

await runControlPlane(process.env);
