-- Delivery to TLS servers: edge tokens and the certificate change feed.
--
-- The feed's cursor must never skip a change: a reader that saw change N must later see every change
-- below N. A bigserial alone does not promise that (transaction A takes id 5, B takes 6 and commits
-- first; a reader that saw 6 and moved its cursor past it never sees 5). So ids come from a one-row
-- counter that every change-writer updates: the row lock is held until the writer commits, writers
-- serialise, and ids become visible in the order they were handed out. The rows are written by a
-- trigger on `certificates`, so the feed is right whatever code path issues, renews or replaces a
-- certificate. The lock is taken only by transactions that change which certificate is current
-- (issuance, renewal), and held only for the rest of that transaction.
CREATE TABLE "edge_tokens" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"token_hash" text NOT NULL,
	"tenant_ids" uuid[],
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	"last_used_at" timestamp with time zone,
	"use_count" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "edge_tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE TABLE "certificate_change_counter" (
	"only_row" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"last_id" bigint NOT NULL,
	CONSTRAINT "certificate_change_counter_one_row" CHECK ("only_row")
);
--> statement-breakpoint
CREATE TABLE "certificate_changes" (
	"id" bigint PRIMARY KEY NOT NULL,
	"certificate_id" uuid NOT NULL REFERENCES "certificates"("id"),
	"tenant_id" uuid NOT NULL,
	"domains" text[] NOT NULL,
	"became_current" boolean NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "certificate_changes_by_tenant" ON "certificate_changes" USING btree ("tenant_id","id");
--> statement-breakpoint
-- Certificates current before this migration enter the feed first, so a full sync from cursor 0 sees them.
INSERT INTO "certificate_changes" ("id", "certificate_id", "tenant_id", "domains", "became_current", "at")
	SELECT row_number() OVER (ORDER BY "created_at", "id"), "id", "tenant_id", "domains", true, "created_at"
	FROM "certificates" WHERE "is_current";
--> statement-breakpoint
INSERT INTO "certificate_change_counter" ("only_row", "last_id")
	SELECT true, coalesce(max("id"), 0) FROM "certificate_changes";
--> statement-breakpoint
CREATE FUNCTION "certq_record_certificate_change"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	next_id bigint;
BEGIN
	IF TG_OP = 'INSERT' AND NOT NEW.is_current THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'UPDATE' AND NEW.is_current IS NOT DISTINCT FROM OLD.is_current THEN
		RETURN NULL;
	END IF;
	-- The row lock taken here orders every change-writer (see the top of this file).
	UPDATE certificate_change_counter SET last_id = last_id + 1 WHERE only_row RETURNING last_id INTO next_id;
	INSERT INTO certificate_changes (id, certificate_id, tenant_id, domains, became_current)
		VALUES (next_id, NEW.id, NEW.tenant_id, NEW.domains, NEW.is_current);
	-- Delivered at commit; API replicas wake long-polls and drop cached bundles. Polling backs it up.
	PERFORM pg_notify('certq_certificate_changes', next_id::text);
	RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER "certificates_record_change" AFTER INSERT OR UPDATE OF "is_current" ON "certificates"
	FOR EACH ROW EXECUTE FUNCTION "certq_record_certificate_change"();
