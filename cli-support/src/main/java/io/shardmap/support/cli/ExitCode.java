package io.shardmap.support.cli;

/**
 * The exit codes of every Shardmap command line. A number means the same in each CLI; a CLI that cannot
 * end a given way (shardmapctl never cancels a migration) simply never uses that code. Scripts may rely
 * on these numbers: they are part of the CLIs' contract (docs/cli.md, docs/migrator.md).
 */
public enum ExitCode {
  /** The command did what was asked. */
  OK(0, "done"),
  /** Anything not classified below (an internal error, an unexpected status). */
  OTHER(1, "anything else"),
  /** A command-line mistake, or INVALID_ARGUMENT / OUT_OF_RANGE: the request itself is wrong. */
  USAGE(2, "usage error, INVALID_ARGUMENT or OUT_OF_RANGE"),
  /** NOT_FOUND: a named thing does not exist. */
  NOT_FOUND(3, "NOT_FOUND"),
  /**
   * ALREADY_EXISTS or FAILED_PRECONDITION: the request is well formed but the state it met refuses it
   * (the thing exists, an expected epoch no longer matches, the state forbids it). Nothing was changed.
   */
  REFUSED(4, "ALREADY_EXISTS or FAILED_PRECONDITION (refused by the current state)"),
  /** UNAVAILABLE or DEADLINE_EXCEEDED: a server was unreachable or too slow; try again later. */
  UNAVAILABLE(5, "UNAVAILABLE or DEADLINE_EXCEEDED (try again later)"),
  /** A migration the command drove ended cancelled. */
  CANCELLED(6, "the migration ended cancelled"),
  /** ABORTED: another writer or worker won (concurrent changes, a migration held by a live worker). */
  ABORTED(7, "ABORTED (another writer or worker won)"),
  /**
   * A comparison found differences (the copies of a reference table differ: {@code migrator reference
   * verify}); nothing failed, and nothing was changed.
   */
  DIFFERENT(8, "the copies compared differ (reference verify)"),
  /** Stopped by SIGINT (128 + 2). */
  INTERRUPTED(130, "stopped by SIGINT"),
  /** Stopped by SIGTERM (128 + 15). */
  TERMINATED(143, "stopped by SIGTERM");

  private final int code;
  private final String meaning;

  ExitCode(int code, String meaning) {
    this.code = code;
    this.meaning = meaning;
  }

  /** The process exit status. */
  public int code() {
    return code;
  }

  /** One line for {@code --help} footers and docs. */
  public String meaning() {
    return meaning;
  }

  /**
   * The exit code of a failure that carries this gRPC status code, by its name ({@code
   * io.grpc.Status.Code#name()}, or {@code io.shardmap.core.ErrorCode#grpcCode()}); an unknown name is
   * {@link #OTHER}.
   */
  public static ExitCode ofStatus(String grpcCode) {
    return switch (grpcCode) {
      case "OK" -> OK;
      // OUT_OF_RANGE: an argument past what exists (shardmapctl watch --after beyond etcd's revision).
      case "INVALID_ARGUMENT", "OUT_OF_RANGE" -> USAGE;
      case "NOT_FOUND" -> NOT_FOUND;
      case "ALREADY_EXISTS", "FAILED_PRECONDITION" -> REFUSED;
      case "UNAVAILABLE", "DEADLINE_EXCEEDED" -> UNAVAILABLE;
      case "ABORTED" -> ABORTED;
      default -> OTHER;
    };
  }

  /** The stop by this signal number: 2 is {@link #INTERRUPTED}, 15 {@link #TERMINATED}. */
  public static ExitCode ofSignal(int signal) {
    return switch (signal) {
      case 2 -> INTERRUPTED;
      case 15 -> TERMINATED;
      default -> throw new IllegalArgumentException("signal: only SIGINT (2) and SIGTERM (15) stop a command, got "
          + signal);
    };
  }

  /**
   * {@code --help} footer lines listing the given codes in the order given, one a line ({@code "  4
   * ALREADY_EXISTS or ..."}) under an {@code "Exit codes:"} line. Generated from this table, so a CLI's
   * help cannot drift from the codes it returns.
   */
  public static String[] footer(ExitCode... codes) {
    String[] lines = new String[codes.length + 1];
    lines[0] = "Exit codes:";
    for (int i = 0; i < codes.length; i++) {
      lines[i + 1] = String.format(java.util.Locale.ROOT, "  %-4d%s", codes[i].code, codes[i].meaning);
    }
    return lines;
  }
}
