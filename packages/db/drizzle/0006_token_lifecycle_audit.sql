-- Tenant token rotation (the previous token stays valid until previous_token_expires_at) and revocation.
ALTER TABLE "tenants" ADD COLUMN "previous_token_hash" text;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "previous_token_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "token_revoked_at" timestamp with time zone;--> statement-breakpoint
CREATE UNIQUE INDEX "tenants_previous_token_hash_unique" ON "tenants" ("previous_token_hash") WHERE "previous_token_hash" IS NOT NULL;--> statement-breakpoint
-- The audit list: who (actor, client address, request id) changed what, newest first by id.
ALTER TABLE "audit_log" ADD COLUMN "ip" text;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "request_id" text;--> statement-breakpoint
CREATE INDEX "audit_log_by_tenant" ON "audit_log" ("tenant_id", "id");
--> statement-breakpoint
-- Lost applications adopted: the application id an issued callback announced for an order whose apply
-- outcome was lost (the worker re-fetches and checks it before adopting it).
ALTER TABLE "orders" ADD COLUMN "announced_apply_id" text;
