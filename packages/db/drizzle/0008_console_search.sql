-- The operator console (/admin) searches a million orders and certificates by domain — a prefix
-- ("shop.exa*") or every name under a domain ("*.example.com") — which the GIN index on the domains
-- array cannot answer (it knows whole elements only). Trigram indexes on domains_key (the sorted,
-- comma-joined names) answer LIKE '%…%' patterns. pg_trgm is a trusted extension (PostgreSQL ≥ 13):
-- the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;--> statement-breakpoint
CREATE INDEX "orders_domains_key_trgm" ON "orders" USING gin ("domains_key" gin_trgm_ops);--> statement-breakpoint
CREATE INDEX "certificates_domains_key_trgm" ON "certificates" USING gin ("domains_key" gin_trgm_ops);--> statement-breakpoint
-- "failed orders, newest first" (the console's default triage list, and bulk retry's count).
CREATE INDEX "orders_by_status_created" ON "orders" USING btree ("status","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
-- Issued / failed per hour over 7 days: only the terminal events, a small part of order_events; with
-- to_status in the index the chart is an index-only scan.
CREATE INDEX "order_events_terminal_by_at" ON "order_events" USING btree ("at","to_status") WHERE "order_events"."to_status" in ('issued', 'failed');--> statement-breakpoint
-- A tenant's certificates by expiry (tenant page, certificate search within a tenant).
CREATE INDEX "certificates_current_by_tenant_expiry" ON "certificates" USING btree ("tenant_id","not_after","id") WHERE "certificates"."is_current";
