-- Domain ownership across tenants: a name, and every name a one-label wildcard of it covers, belongs to at
-- most one tenant at a time. A claim is written with the order that needs it (same statement or
-- transaction), so "claimed" always meant "had an active order or a current certificate" when it was
-- written; a claim whose tenant no longer uses the name (order failed or cancelled, certificate gone) is
-- stale and taken over by the next tenant without proof. The operator's transfers never go stale. See packages/workflow/src/ownership.ts.
CREATE TABLE "domain_claims" (
	"name" text PRIMARY KEY NOT NULL,
	"parent" text NOT NULL,
	-- No foreign key: a bulk of 10,000 orders writes 20,000 claims, and the check per row cost a third of
	-- their insert; claims are written only with an order of the same tenant, which has one.
	"tenant_id" uuid NOT NULL,
	"via" text DEFAULT 'order' NOT NULL,
	"claimed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "domain_claims_by_parent" ON "domain_claims" USING btree ("parent");
--> statement-breakpoint
-- `a.example.com` and `*.example.com` → `example.com`: the names that can overlap share it, and so share
-- the advisory lock that serialises their claims.
CREATE FUNCTION "certq_domain_parent"(name text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
	SELECT substr(name, strpos(name, '.') + 1)
$$;
--> statement-breakpoint
-- Names in use before this migration: current certificates first (oldest first), then active orders.
INSERT INTO "domain_claims" ("name", "parent", "tenant_id", "claimed_at")
	SELECT d, certq_domain_parent(d), c.tenant_id, c.created_at
	FROM "certificates" c CROSS JOIN LATERAL unnest(c.domains) d
	WHERE c.is_current ORDER BY c.created_at, c.id
	ON CONFLICT ("name") DO NOTHING;
--> statement-breakpoint
INSERT INTO "domain_claims" ("name", "parent", "tenant_id", "claimed_at")
	SELECT d, certq_domain_parent(d), o.tenant_id, o.created_at
	FROM "orders" o CROSS JOIN LATERAL unnest(o.domains) d
	WHERE o.status IN ('verifying', 'applying', 'issuing') ORDER BY o.created_at, o.id
	ON CONFLICT ("name") DO NOTHING;
--> statement-breakpoint
-- The claim locks of `p_names`: one per name parent, hashed into 256 buckets so that a bulk of 10,000 orders
-- takes a bounded number of locks (Postgres's shared lock table is small); names that can overlap share
-- a parent, hence a lock. Taken in one sorted order, so two callers never wait on each other in a cycle.
CREATE FUNCTION "certq_lock_domain_names"(p_names text[]) RETURNS void LANGUAGE sql AS $$
	SELECT count(pg_advisory_xact_lock(7245, k)) FROM (
		SELECT DISTINCT (abs(hashtext(certq_domain_parent(n))) % 256)::int AS k FROM unnest(p_names) n ORDER BY k) l;
$$;
--> statement-breakpoint
-- Claims `p_names` for `p_tenant`. Another tenant's claim that overlaps one of them (the same name, a
-- wildcard covering it, or a name under it when it is a wildcard) and is still in use refuses the whole
-- call (SQLSTATE CQ409, DETAIL: the requested names concerned, comma-separated) unless that requested name
-- is in `p_take` (its owner proved control of it): then the claim moves, and a row (claimed name, previous
-- tenant) is returned for each one taken over. Stale claims move silently. Advisory locks on the names'
-- parents, taken in one sorted order, make two tenants' concurrent claims serial: each command below runs
-- after them and sees what the other committed (READ COMMITTED takes a snapshot per command).
CREATE FUNCTION "certq_claim_domains"(p_tenant uuid, p_names text[], p_take text[] DEFAULT '{}', p_via text DEFAULT 'order')
	RETURNS TABLE (claimed_name text, previous_tenant_id uuid) LANGUAGE plpgsql AS $$
DECLARE
	claimed text[];
	owners uuid[];
	wanted text[];
	live boolean[];
	refused text[];
BEGIN
	PERFORM certq_lock_domain_names(p_names);
	SELECT array_agg(c.name), array_agg(c.tenant_id), array_agg(w.n),
		array_agg(c.via = 'operator'
			OR EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = c.tenant_id AND o.domains @> ARRAY[c.name]
				AND o.status IN ('verifying', 'applying', 'issuing'))
			OR EXISTS (SELECT 1 FROM certificates x WHERE x.tenant_id = c.tenant_id AND x.domains @> ARRAY[c.name]
				AND x.is_current))
		INTO claimed, owners, wanted, live
		FROM (
			-- Three index lookups per name: the same name, the wildcard covering it, the names under a wildcard.
			SELECT c.name AS claimed, w.n FROM unnest(p_names) w(n) JOIN domain_claims c ON c.name = w.n
			UNION SELECT c.name, w.n FROM unnest(p_names) w(n)
				JOIN domain_claims c ON c.name = '*.' || certq_domain_parent(w.n) WHERE w.n NOT LIKE '*.%'
			UNION SELECT c.name, w.n FROM unnest(p_names) w(n)
				JOIN domain_claims c ON c.parent = certq_domain_parent(w.n) WHERE w.n LIKE '*.%'
		) w JOIN domain_claims c ON c.name = w.claimed AND c.tenant_id <> p_tenant;
	IF claimed IS NOT NULL THEN
		SELECT array_agg(DISTINCT x.w ORDER BY x.w) INTO refused
			FROM unnest(wanted, live) AS x(w, l) WHERE x.l AND NOT (x.w = ANY(p_take));
		IF refused IS NOT NULL THEN
			RAISE EXCEPTION 'domain_owned_by_another_tenant' USING ERRCODE = 'CQ409',
				DETAIL = array_to_string(refused, ',');
		END IF;
		DELETE FROM domain_claims WHERE name = ANY(claimed);
	END IF;
	INSERT INTO domain_claims (name, parent, tenant_id, via)
		SELECT DISTINCT n, certq_domain_parent(n), p_tenant, p_via FROM unnest(p_names) n
		ON CONFLICT (name) DO NOTHING;
	IF claimed IS NOT NULL THEN
		RETURN QUERY SELECT DISTINCT x.c, x.o FROM unnest(claimed, owners, live) AS x(c, o, l) WHERE x.l;
	END IF;
END;
$$;
--> statement-breakpoint
-- The claim of one new order, as a value of its insert: the tenant id when the names are its to order.
-- A renewal claims nothing: its certificate's names are already its tenant's, and a name transferred away
-- took the certificate out of renewal with it.
CREATE FUNCTION "certq_claim_for_order"(p_tenant uuid, p_names text[], p_kind order_kind) RETURNS uuid
	LANGUAGE plpgsql AS $$
BEGIN
	IF p_kind <> 'renewal' THEN
		PERFORM certq_claim_domains(p_tenant, p_names);
	END IF;
	RETURN p_tenant;
END;
$$;
