package io.shardmap.client.internal.txn;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.sql.CallableStatement;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.Statement;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The connection a cross-shard transaction's work gets for one shard: the pooled connection, with every way
 * of ending its transaction refused. Only the coordinator ends it, so that the shards commit together or not
 * at all: a work that commits one of them itself would commit that shard alone.
 *
 * <p>Refused (INVALID_ARGUMENT naming the call, before anything is sent): {@code commit()}, {@code
 * rollback()} (rolling back to a savepoint is allowed), {@code close()}, {@code abort}, {@code
 * setAutoCommit(true)} ({@code setAutoCommit(false)} is a no-op: the connection is in a transaction), and
 * statements whose SQL starts with COMMIT, END, ABORT, ROLLBACK (but ROLLBACK TO SAVEPOINT), PREPARE
 * TRANSACTION or COMMIT/ROLLBACK PREPARED. A refusal also marks the transaction: the coordinator then rolls
 * every shard back even if the work caught the exception. What SQL text cannot show (a COMMIT later in a
 * multi-statement string) the coordinator sees from the driver's transaction state after the work (a
 * statement ran, yet no transaction is open).
 *
 * <p>After the transaction ended every call is refused (FAILED_PRECONDITION): the connection is back in its
 * pool and may serve someone else.
 */
final class GuardedConnection implements InvocationHandler {
  private static final Set<String> REFUSED = Set.of("commit", "close", "abort", "setAutoCommit");
  /** A statement that ends (or prepares) the transaction, by its first keyword after comments and blanks. */
  private static final Pattern ENDS_TRANSACTION = Pattern.compile("^(?:\\s|--[^\\n]*\\n|/\\*.*?\\*/)*"
      + "(?:COMMIT|END|ABORT|PREPARE\\s+TRANSACTION|ROLLBACK(?!\\s+(?:WORK\\s+|TRANSACTION\\s+)?TO\\b)(?!\\s+PREPARED\\b)"
      + "|ROLLBACK\\s+PREPARED)\\b", Pattern.CASE_INSENSITIVE | Pattern.DOTALL);

  /**
   * A statement that surely writes when it changes a row (INSERT, UPDATE, DELETE, MERGE, COPY, TRUNCATE): a
   * participant that ran one is taken as a writer without asking the server. Anything else (a SELECT may
   * call a function that writes) leaves the question to the coordinator's write check.
   */
  private static final Pattern WRITES = Pattern.compile("^(?:\\s|--[^\\n]*\\n|/\\*.*?\\*/)*"
      + "(?:INSERT|UPDATE|DELETE|MERGE|COPY|TRUNCATE)\\b", Pattern.CASE_INSENSITIVE | Pattern.DOTALL);

  private final Connection raw;
  private final String shard;
  private final Participant.Marks marks;
  final Connection proxy;

  GuardedConnection(Connection raw, String shard, Participant.Marks marks) {
    this.raw = raw;
    this.shard = shard;
    this.marks = marks;
    this.proxy = (Connection) Proxy.newProxyInstance(Connection.class.getClassLoader(),
        new Class<?>[] {Connection.class}, this);
  }

  /** Whether {@code sql} surely writes if it changes a row ({@link #WRITES}). */
  static boolean writes(String sql) {
    return sql != null && WRITES.matcher(sql).lookingAt();
  }

  /** Whether {@code sql} would end or prepare the transaction (what the work may not do). */
  static boolean endsTransaction(String sql) {
    return sql != null && ENDS_TRANSACTION.matcher(sql).lookingAt();
  }

  @Override
  public Object invoke(Object p, Method m, Object[] args) throws Throwable {
    String name = m.getName();
    switch (name) {
      case "equals":
        return p == args[0];
      case "hashCode":
        return System.identityHashCode(p);
      case "toString":
        return "cross-shard transaction connection to shard " + shard;
      case "isClosed":
        return marks.ended;
      default:
        break;
    }
    if (marks.ended) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "Connection." + name + " on shard " + shard
          + ": the cross-shard transaction has ended (use connections only inside the work)");
    }
    if (name.equals("setAutoCommit") && Boolean.FALSE.equals(args[0])) {
      return null; // already in a transaction: libraries that make sure of it are welcome
    }
    if (name.equals("getAutoCommit")) {
      return false;
    }
    if (REFUSED.contains(name) || (name.equals("rollback") && (args == null || args.length == 0))) {
      throw refuse("Connection." + name + "()");
    }
    if ((name.equals("prepareStatement") || name.equals("prepareCall") || name.equals("nativeSQL"))
        && args != null && args.length > 0 && args[0] instanceof String sql && endsTransaction(sql)) {
      throw refuse("a statement that ends the transaction (" + abbreviate(sql) + ")");
    }
    Object out;
    try {
      out = m.invoke(raw, args);
    } catch (InvocationTargetException e) {
      throw e.getCause();
    }
    if (out instanceof Statement s) {
      Class<?> type = s instanceof CallableStatement ? CallableStatement.class
          : s instanceof PreparedStatement ? PreparedStatement.class : Statement.class;
      String sql = args != null && args.length > 0 && args[0] instanceof String q ? q : null;
      return Proxy.newProxyInstance(Connection.class.getClassLoader(), new Class<?>[] {type},
          new Guarded(s, p, sql));
    }
    return out;
  }

  /**
   * The SQL that sets what must hold before the work's next statement here: the lock timeout, the reference
   * epochs declared ({@code ReferenceGuard.EPOCHS_SETTING}); null when nothing is pending.
   */
  static String pendingSettings(Participant.Marks marks) {
    StringBuilder b = null;
    if (marks.lockTimeoutMs > 0 && !marks.lockTimeoutSet) {
      b = new StringBuilder("SET LOCAL lock_timeout = '" + marks.lockTimeoutMs + "ms'");
    }
    if (marks.declaration != null && !marks.declarationSent) {
      b = b == null ? new StringBuilder() : b.append("; ");
      b.append("SELECT set_config('").append(io.shardmap.core.sql.ReferenceGuard.EPOCHS_SETTING).append("', ")
          .append(dollarQuoted(marks.declaration)).append(", true)");
    }
    return b == null ? null : b.toString();
  }

  /**
   * {@code s} as a dollar-quoted literal, whose content PostgreSQL takes as is (no escapes). A declaration
   * begins and ends with a comma, so no tag can end early by overlapping its edges.
   */
  static String dollarQuoted(String s) {
    String tag = "$sm$";
    for (int i = 0; s.contains(tag); i++) {
      tag = "$sm" + i + "$";
    }
    return tag + s + tag;
  }

  private ShardmapException refuse(String what) {
    marks.refused = what;
    return ShardmapException.invalid("work", what + " on shard " + shard + " is not allowed in a cross-shard "
        + "transaction: the SDK commits or rolls back every shard together (return from the work to commit, "
        + "throw to roll back); the whole transaction will be rolled back");
  }

  private static String abbreviate(String sql) {
    String s = sql.strip();
    return s.length() <= 60 ? s : s.substring(0, 57) + "...";
  }

  /** A statement of the connection: marks the transaction used, refuses SQL that would end it. */
  private final class Guarded implements InvocationHandler {
    private final Statement raw;
    private final Object connectionProxy;
    /** A prepared statement's SQL (null for a plain statement, whose SQL comes with each execute). */
    private final String sql;

    Guarded(Statement raw, Object connectionProxy, String sql) {
      this.raw = raw;
      this.connectionProxy = connectionProxy;
      this.sql = sql;
    }

    @Override
    public Object invoke(Object p, Method m, Object[] args) throws Throwable {
      String name = m.getName();
      switch (name) {
        case "equals":
          return p == args[0];
        case "hashCode":
          return System.identityHashCode(p);
        case "getConnection":
          return connectionProxy;
        default:
          break;
      }
      if (name.startsWith("execute") || name.equals("addBatch")) {
        if (marks.ended) {
          throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "Statement." + name + " on shard " + shard
              + ": the cross-shard transaction has ended (use connections only inside the work)");
        }
        String text = args != null && args.length > 0 && args[0] instanceof String q ? q : sql;
        if (text != sql && endsTransaction(text)) {
          throw refuse("a statement that ends the transaction (" + abbreviate(text) + ")");
        }
        String settings = pendingSettings(marks);
        if (settings != null) {
          // One round trip for both (a multi-statement simple query); what they set ends with the transaction.
          try (Statement s = GuardedConnection.this.raw.createStatement()) {
            s.execute(settings);
          }
          marks.lockTimeoutSet = marks.lockTimeoutMs > 0;
          marks.declarationSent = true;
        }
        marks.used = true;
        if (!marks.wrote && writes(text)) {
          marks.wrote = true;
        }
      }
      try {
        return m.invoke(raw, args);
      } catch (InvocationTargetException e) {
        throw e.getCause();
      }
    }
  }
}
