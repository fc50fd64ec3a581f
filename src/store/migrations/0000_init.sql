CREATE TABLE `snapshots` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`key` text NOT NULL,
	`parent_id` integer,
	`kind` text NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`size` integer DEFAULT 0 NOT NULL,
	`inodes` integer DEFAULT 0 NOT NULL,
	FOREIGN KEY (`parent_id`) REFERENCES `snapshots`(`id`) ON UPDATE no action ON DELETE restrict
);
--> statement-breakpoint
CREATE UNIQUE INDEX `snapshots_key_unique` ON `snapshots` (`key`);--> statement-breakpoint
CREATE INDEX `snapshots_parent_id_idx` ON `snapshots` (`parent_id`);