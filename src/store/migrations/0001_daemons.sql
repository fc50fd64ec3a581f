CREATE TABLE `daemons` (
	`id` text PRIMARY KEY NOT NULL,
	`pid` integer DEFAULT 0 NOT NULL,
	`api_socket` text NOT NULL,
	`mode` text NOT NULL,
	`fs_driver` text NOT NULL,
	`mountpoint` text NOT NULL,
	`config_dir` text NOT NULL,
	`bootstrap` text,
	`supervisor_path` text,
	`log_dir` text NOT NULL,
	`log_level` text NOT NULL,
	`log_to_stdout` integer NOT NULL,
	`log_rotation_size` integer DEFAULT 0 NOT NULL,
	`thread_num` integer DEFAULT 0 NOT NULL,
	`failover_policy` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `instances` (
	`snapshot_id` text PRIMARY KEY NOT NULL,
	`seq` integer NOT NULL,
	`image_id` text NOT NULL,
	`daemon_id` text NOT NULL,
	`fs_driver` text NOT NULL,
	`snapshot_dir` text NOT NULL,
	`bootstrap` text NOT NULL,
	`mountpoint` text NOT NULL,
	`blob_ids` text,
	`annotations` text DEFAULT '{}' NOT NULL,
	`status` text DEFAULT 'ready' NOT NULL,
	`problem` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`daemon_id`) REFERENCES `daemons`(`id`) ON UPDATE no action ON DELETE restrict
);
--> statement-breakpoint
CREATE UNIQUE INDEX `instances_seq_unique` ON `instances` (`seq`);--> statement-breakpoint
CREATE INDEX `instances_daemon_id_idx` ON `instances` (`daemon_id`);--> statement-breakpoint
CREATE TABLE `readiness` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`subject` text NOT NULL,
	`problem` text NOT NULL,
	`fix` text NOT NULL,
	`checked_at` integer NOT NULL
);
