CREATE TYPE "public"."dns_status" AS ENUM('pending', 'ok', 'missing', 'wrong_target', 'caa_forbidden', 'lookup_failed');--> statement-breakpoint
ALTER TABLE "order_dns" ADD COLUMN "status" "dns_status" DEFAULT 'pending' NOT NULL;--> statement-breakpoint
ALTER TABLE "order_dns" ADD COLUMN "found" text;--> statement-breakpoint
ALTER TABLE "order_dns" ADD COLUMN "reason" text;--> statement-breakpoint
UPDATE "order_dns" SET "status" = 'ok' WHERE "valid";--> statement-breakpoint
CREATE INDEX "order_dns_not_ok_by_status" ON "order_dns" USING btree ("status") WHERE "order_dns"."status" <> 'ok';--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "ca_choices" "certificate_authority"[];--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "ca_failures" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "last_dv_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "dns_check_requested_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "default_ca_choices" "certificate_authority"[];
