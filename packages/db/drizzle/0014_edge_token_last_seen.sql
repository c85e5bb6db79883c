-- Each edge token's last contact with certq (a TLS route request or a change-feed poll), written at most
-- once a minute per token by the API (never per handshake): an operator sees an edge that stopped following.
ALTER TABLE "edge_tokens" ADD COLUMN "last_seen_at" timestamp with time zone;
