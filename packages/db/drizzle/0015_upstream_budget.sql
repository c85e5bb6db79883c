-- Where the upstream budget goes: httpsok calls per minute by endpoint (dv, apply, get) and reason
-- (first, confirming, split_horizon, apply, issuing, issued, failed, adoption, error, retry), and the
-- certificates issued per minute, added up by each worker and flushed every few seconds. /v1/stats
-- reads calls per issued certificate over the last hour from these; rows older than a week are deleted.
CREATE TABLE "upstream_calls" (
	"minute" timestamp with time zone NOT NULL,
	"endpoint" text NOT NULL,
	"reason" text NOT NULL,
	"calls" bigint NOT NULL,
	CONSTRAINT "upstream_calls_pk" PRIMARY KEY("minute","endpoint","reason")
);--> statement-breakpoint
CREATE TABLE "upstream_issued" (
	"minute" timestamp with time zone PRIMARY KEY NOT NULL,
	"issued" bigint NOT NULL
);
