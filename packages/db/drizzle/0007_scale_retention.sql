-- Operator listing of current certificates, newest first, at any page depth (keyset on created_at, id).
CREATE INDEX "certificates_current_by_created" ON "certificates" USING btree ("created_at" DESC NULLS LAST,"id" DESC NULLS LAST) WHERE "certificates"."is_current";--> statement-breakpoint
-- Retention: certificates no longer current, by expiry.
CREATE INDEX "certificates_history_by_expiry" ON "certificates" USING btree ("not_after","id") WHERE NOT "certificates"."is_current";--> statement-breakpoint
-- Retention: events oldest first, so a purge batch reads only rows old enough to go.
CREATE INDEX "order_events_by_at" ON "order_events" USING btree ("at","id");--> statement-breakpoint
-- Retention: settled webhook deliveries by age.
CREATE INDEX "webhook_deliveries_settled_by_created" ON "webhook_deliveries" USING btree ("created_at","id") WHERE "webhook_deliveries"."status" <> 'pending';
