-- Renewal follows each certificate's own lifetime (see @certq/core renewal-policy.ts): certificates.renew_at
-- is when the renewal scan takes the certificate. The worker computes it when it stores a certificate
-- (with RENEW_BEFORE_DAYS and the random spread); certq_renewal_time is the same rule without
-- RENEW_BEFORE_DAYS, for existing rows and for inserts that give none (a test keeps the two in step).
CREATE FUNCTION "certq_renewal_time"(not_before timestamptz, not_after timestamptz, draw double precision)
RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  select s.start + least((not_after - s.start) * 0.1, interval '2 days') * draw
  from (select not_after - greatest(not_after - not_before, interval '0')
    * case when not_after - not_before < interval '10 days' then 0.5 else 1.0 / 3 end as start) s
$$;--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "renew_at" timestamp with time zone;--> statement-breakpoint
UPDATE "certificates" SET "renew_at" = "certq_renewal_time"("not_before", "not_after", random());--> statement-breakpoint
ALTER TABLE "certificates" ALTER COLUMN "renew_at" SET NOT NULL;--> statement-breakpoint
CREATE FUNCTION "certq_default_renew_at"() RETURNS trigger LANGUAGE plpgsql AS $$
begin
  new.renew_at := certq_renewal_time(new.not_before, new.not_after, random());
  return new;
end
$$;--> statement-breakpoint
CREATE TRIGGER "certificates_default_renew_at" BEFORE INSERT ON "certificates"
  FOR EACH ROW WHEN (new.renew_at IS NULL) EXECUTE FUNCTION "certq_default_renew_at"();--> statement-breakpoint
-- The renewal scan: current certificates by renewal time, keyset on (renew_at, id).
CREATE INDEX "certificates_current_by_renew_at" ON "certificates" USING btree ("renew_at","id") WHERE "certificates"."is_current";--> statement-breakpoint
-- Why a renewal order was created (null for a new order): a closed list, @certq/core RENEWAL_REASONS.
CREATE TYPE "public"."renewal_reason" AS ENUM('nearing_expiry', 'manual');--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "renewal_reason" "renewal_reason";--> statement-breakpoint
UPDATE "orders" SET "renewal_reason" = CASE WHEN "renewal_batch_id" IS NULL THEN 'nearing_expiry' ELSE 'manual' END::"renewal_reason"
  WHERE "kind" = 'renewal';
