/**
 * Admin revocation API (SPEC §5, §8). Placeholder until the keys-and-revocation work lands:
 * every call answers 404 so nothing is accepted without authentication and a journal.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TransportContext } from '../transports/context.ts';

/** Handles `/revocations` requests; returns false when the path is not its own. */
export type AdminRoute = (req: IncomingMessage, res: ServerResponse) => boolean;

export function createRevocationsApi(_ctx: TransportContext): AdminRoute {
  return () => false;
}
