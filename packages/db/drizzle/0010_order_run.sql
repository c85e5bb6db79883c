-- orders.attempts holds the run number (1, then one more per operator retry or move to the next CA): named so.
ALTER TABLE "orders" RENAME COLUMN "attempts" TO "run";
