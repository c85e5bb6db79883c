-- Fair queues: a new order's priority is its lane's base plus its tenant's active orders in that lane
-- (see @certq/core PRIORITY, packages/workflow README). Counting them, at most BACKLOG_COUNT_CAP index
-- entries and one probe for the tenant's last, in the insert itself.
CREATE INDEX "orders_active_by_tenant_priority" ON "orders" USING btree ("tenant_id","priority") WHERE "orders"."status" in ('verifying', 'applying', 'issuing');--> statement-breakpoint
-- "Orders of a status, newest first" asks ORDER BY created_at DESC, id DESC, which is NULLS FIRST in
-- Postgres; 0008 built this index DESC NULLS LAST, so only queries spelling `nulls last` could use it
-- and every status-filtered listing sorted all the orders of that status. Same columns, the order the
-- listings ask for, as 0007 did for the other keyset indexes.
DROP INDEX IF EXISTS "orders_by_status_created";--> statement-breakpoint
CREATE INDEX "orders_by_status_created" ON "orders" USING btree ("status","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);
