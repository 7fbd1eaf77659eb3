// Package daemonlog is the daemon's own log: the log.format and log.level
// settings (and --log-format, --log-level) with their names, and the
// slog.Logger they make. The configuration file decodes into its types and
// the command line parses its flags with them, so both take the same names.
package daemonlog
