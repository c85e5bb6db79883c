-- A certificate's life (see packages/core/src/certificate-status.ts): retirement, moved away, uploaded
-- certificates, and suspended or deleted tenants.
CREATE TYPE "public"."certificate_state" AS ENUM('active', 'moved', 'uploaded');
--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "state" "certificate_state" DEFAULT 'active' NOT NULL;
--> statement-breakpoint
-- Set when a certificate stops being current for a reason other than its replacement.
ALTER TABLE "certificates" ADD COLUMN "retired_at" timestamp with time zone;
--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "retired_reason" text;
--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "retired_by" text;
--> statement-breakpoint
-- The first of an unbroken run of renewal DNS checks reading missing or wrong_target.
ALTER TABLE "certificates" ADD COLUMN "dns_lost_since" timestamp with time zone;
--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "moved_at" timestamp with time zone;
--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "moved_diagnosis" jsonb;
--> statement-breakpoint
-- An uploaded certificate has no order, application or CA of certq's.
ALTER TABLE "certificates" ALTER COLUMN "order_id" DROP NOT NULL;
--> statement-breakpoint
ALTER TABLE "certificates" ALTER COLUMN "apply_id" DROP NOT NULL;
--> statement-breakpoint
ALTER TABLE "certificates" ALTER COLUMN "ca" DROP NOT NULL;
--> statement-breakpoint
ALTER TABLE "certificates" ADD CONSTRAINT "certificates_retired_reason_known"
	CHECK ("retired_reason" IS NULL OR "retired_reason" IN ('retired', 'tenant_deleted', 'tenant_suspended', 'transferred'));
--> statement-breakpoint
ALTER TABLE "certificates" ADD CONSTRAINT "certificates_issued_has_order"
	CHECK ("state" = 'uploaded' OR ("order_id" IS NOT NULL AND "apply_id" IS NOT NULL AND "ca" IS NOT NULL));
--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "suspended_at" timestamp with time zone;
--> statement-breakpoint
-- Suspended with stopServing: its certificates were taken out of delivery (retired_reason tenant_suspended).
ALTER TABLE "tenants" ADD COLUMN "stop_serving" boolean DEFAULT false NOT NULL;
--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "deleted_at" timestamp with time zone;
