CREATE TYPE "public"."algorithm" AS ENUM('ECC', 'RSA');--> statement-breakpoint
CREATE TYPE "public"."certificate_authority" AS ENUM('google', 'letsencrypt', 'zerossl');--> statement-breakpoint
CREATE TYPE "public"."order_kind" AS ENUM('new', 'renewal');--> statement-breakpoint
CREATE TYPE "public"."order_status" AS ENUM('verifying', 'applying', 'issuing', 'issued', 'failed', 'cancelled');--> statement-breakpoint
CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"tenant_id" uuid,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"subject_id" uuid,
	"detail" jsonb,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "certificates" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"order_id" uuid NOT NULL,
	"domains" text[] NOT NULL,
	"domains_key" text NOT NULL,
	"apply_id" text NOT NULL,
	"algorithm" "algorithm" NOT NULL,
	"ca" "certificate_authority" NOT NULL,
	"not_before" timestamp with time zone NOT NULL,
	"not_after" timestamp with time zone NOT NULL,
	"fingerprint" text NOT NULL,
	"certificate_pem" text NOT NULL,
	"private_key_sealed" text NOT NULL,
	"is_current" boolean DEFAULT true NOT NULL,
	"renewal_failures" integer DEFAULT 0 NOT NULL,
	"renewal_not_before" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "certificates_order_id_unique" UNIQUE("order_id")
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"tenant_id" uuid NOT NULL,
	"key" text NOT NULL,
	"request_hash" text NOT NULL,
	"order_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "idempotency_keys_tenant_id_key_pk" PRIMARY KEY("tenant_id","key")
);
--> statement-breakpoint
CREATE TABLE "order_dns" (
	"order_id" uuid NOT NULL,
	"domain" text NOT NULL,
	"host" text NOT NULL,
	"host_value" text NOT NULL,
	"valid" boolean NOT NULL,
	"checked_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "order_dns_order_id_domain_pk" PRIMARY KEY("order_id","domain")
);
--> statement-breakpoint
CREATE TABLE "order_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"order_id" uuid NOT NULL,
	"type" text NOT NULL,
	"from_status" "order_status",
	"to_status" "order_status",
	"detail" jsonb,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "orders" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"kind" "order_kind" DEFAULT 'new' NOT NULL,
	"domains" text[] NOT NULL,
	"domains_key" text NOT NULL,
	"algorithm" "algorithm" DEFAULT 'ECC' NOT NULL,
	"ca" "certificate_authority" DEFAULT 'google' NOT NULL,
	"status" "order_status" DEFAULT 'verifying' NOT NULL,
	"apply_id" text,
	"progress" integer DEFAULT 0 NOT NULL,
	"attempts" integer DEFAULT 1 NOT NULL,
	"stage_attempts" integer DEFAULT 0 NOT NULL,
	"stage_started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_polled_at" timestamp with time zone,
	"last_error" text,
	"priority" integer DEFAULT 1 NOT NULL,
	"callback_secret_hash" text,
	"certificate_id" uuid,
	"renewal_of_certificate_id" uuid,
	"renewal_batch_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "orders_apply_id_unique" UNIQUE("apply_id"),
	CONSTRAINT "orders_callback_secret_hash_unique" UNIQUE("callback_secret_hash"),
	CONSTRAINT "orders_domains_count" CHECK (cardinality("orders"."domains") between 1 and 100),
	CONSTRAINT "orders_issuing_has_apply_id" CHECK ("orders"."status" not in ('issuing', 'issued') or "orders"."apply_id" is not null),
	CONSTRAINT "orders_progress_range" CHECK ("orders"."progress" between 0 and 100)
);
--> statement-breakpoint
CREATE TABLE "renewal_batches" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"requested_by_tenant_id" uuid,
	"filter" jsonb NOT NULL,
	"total" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tenants" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"token_hash" text NOT NULL,
	"httpsok_api_key_sealed" text,
	"webhook_url" text,
	"webhook_secret_sealed" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "tenants_name_unique" UNIQUE("name"),
	CONSTRAINT "tenants_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
ALTER TABLE "certificates" ADD CONSTRAINT "certificates_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "certificates" ADD CONSTRAINT "certificates_order_id_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "public"."orders"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_order_id_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "public"."orders"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "order_dns" ADD CONSTRAINT "order_dns_order_id_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "public"."orders"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "order_events" ADD CONSTRAINT "order_events_order_id_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "public"."orders"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "orders" ADD CONSTRAINT "orders_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "orders" ADD CONSTRAINT "orders_renewal_batch_id_renewal_batches_id_fk" FOREIGN KEY ("renewal_batch_id") REFERENCES "public"."renewal_batches"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "renewal_batches" ADD CONSTRAINT "renewal_batches_requested_by_tenant_id_tenants_id_fk" FOREIGN KEY ("requested_by_tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "audit_log_by_subject" ON "audit_log" USING btree ("subject_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "certificates_one_current_per_domain_set" ON "certificates" USING btree ("tenant_id","domains_key") WHERE "certificates"."is_current";--> statement-breakpoint
CREATE INDEX "certificates_current_by_expiry" ON "certificates" USING btree ("not_after","id") WHERE "certificates"."is_current";--> statement-breakpoint
CREATE INDEX "certificates_by_tenant_created" ON "certificates" USING btree ("tenant_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "certificates_domains_gin" ON "certificates" USING gin ("domains");--> statement-breakpoint
CREATE INDEX "order_events_by_order" ON "order_events" USING btree ("order_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "orders_one_active_per_domain_set" ON "orders" USING btree ("tenant_id","domains_key") WHERE "orders"."status" in ('verifying', 'applying', 'issuing');--> statement-breakpoint
CREATE INDEX "orders_active_by_next_attempt" ON "orders" USING btree ("next_attempt_at") WHERE "orders"."status" in ('verifying', 'applying', 'issuing');--> statement-breakpoint
CREATE INDEX "orders_by_tenant_created" ON "orders" USING btree ("tenant_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "orders_by_created" ON "orders" USING btree ("created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "orders_by_batch" ON "orders" USING btree ("renewal_batch_id") WHERE "orders"."renewal_batch_id" is not null;--> statement-breakpoint
CREATE INDEX "orders_domains_gin" ON "orders" USING gin ("domains");