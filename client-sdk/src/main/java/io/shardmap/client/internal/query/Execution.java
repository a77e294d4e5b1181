package io.shardmap.client.internal.query;

import io.shardmap.client.internal.Counters;
import io.shardmap.client.internal.Counters.QueryFailure;
import io.shardmap.client.internal.Counters.QueryOutcome;
import io.shardmap.core.ShardmapException;
import io.shardmap.query.ColumnType;
import io.shardmap.query.MergeOptions;
import io.shardmap.query.RowSource;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * A running cross-shard query: the merge over its started parts, read by one consumer thread. A part that
 * fails while its rows are read fails the query (every other statement is cancelled) or, in partial mode,
 * ends its rows there and is reported; the deadline cancels every statement and fails the next read with
 * DEADLINE_EXCEEDED. {@link #close} cancels what still runs and gives every connection back.
 */
public final class Execution implements AutoCloseable {
  /** One part's status: see the SDK's {@code ShardStatus}. */
  public record Status(String shard, long rows, String error, long elapsedNanos) {}

  private final QueryExecutor.Attempt attempt;
  private final QueryExecutor.Request request;
  private final long revision;
  private final RowSource merged;
  private boolean partial;
  private boolean closed;
  private boolean done;
  /** How the query ended is counted once, at its end (never per row). */
  private boolean counted;
  /** Set where a part's failure while reading is thrown: the cause counted when it reaches the caller. */
  private QueryFailure readFailure;

  Execution(QueryExecutor.Attempt attempt, QueryExecutor.Request request, long revision) throws SQLException {
    this.attempt = attempt;
    this.request = request;
    this.revision = revision;
    List<RowSource> sources = new ArrayList<>();
    Part first = null;
    Set<String> shards = new TreeSet<>();
    for (Part p : attempt.parts) {
      shards.add(p.shard);
      if (p.error() != null) {
        partial = true; // partial mode: this shard contributes nothing
        p.release();
        continue;
      }
      if (first == null) {
        first = p;
      }
      sources.add(p.source(this));
    }
    // A detached (whole) part's worker has already learnt the column types; any other part is on its
    // connection, which can learn them.
    List<ColumnType> columns = first == null ? List.of()
        : attempt.executorColumnTypes().of(request.plan(), shards, first.connection(),
            first.detached() ? null : first.rows().getMetaData(), request.params());
    this.merged = request.plan().merge(sources, request.params(), new MergeOptions(request.maxInMemoryRows(), columns));
  }

  /** The map revision the query ran at. */
  public long revision() {
    return revision;
  }

  /** The next merged row, or null at the end. */
  public Object[] next() throws SQLException {
    if (closed) {
      throw new SQLException("this query result is closed");
    }
    if (done) {
      return null;
    }
    if (attempt.timedOut()) {
      throw failAndClose(deadline());
    }
    try {
      Object[] row = merged.next();
      if (row == null) {
        done = true;
        attempt.cancelDeadline();
        for (Part p : attempt.parts) {
          p.release(); // every part was read to its end: commit-equivalent, connection back to the pool
        }
        ended(partial ? QueryOutcome.PARTIAL : QueryOutcome.OK);
      }
      return row;
    } catch (SQLException | RuntimeException e) {
      // A part's failure was classified where it was thrown; anything else failed in the merge itself.
      failed(QueryFailure.of(e, readFailure != null ? readFailure : QueryFailure.OTHER));
      close();
      throw e;
    }
  }

  private ShardmapException failAndClose(ShardmapException e) {
    failed(QueryFailure.DEADLINE);
    close();
    return e;
  }

  private void ended(QueryOutcome outcome) {
    if (!counted) {
      counted = true;
      attempt.stats().queryEnded(outcome, System.nanoTime() - request.startNanos());
    }
  }

  private void failed(QueryFailure cause) {
    if (!counted) {
      counted = true;
      attempt.stats().queryFailed(cause, System.nanoTime() - request.startNanos());
    }
  }

  private ShardmapException deadline() {
    List<String> open = new ArrayList<>();
    for (Part p : attempt.parts) {
      if (!p.exhausted() && p.error() == null) {
        open.add(p.shard);
      }
    }
    return attempt.deadlineExceeded(open);
  }

  /**
   * Called by a part's row source when reading it failed: in partial mode the part ends there (its rows so
   * far stay merged) and null is returned; otherwise the exception naming it is thrown.
   */
  Object[] partFailedWhileReading(Part p, SQLException e) {
    if (attempt.timedOut()) {
      throw deadline();
    }
    p.fail(QueryExecutor.describe(p.shard, e));
    p.release();
    attempt.stats().partFailed();
    if (request.partial()) {
      partial = true;
      return null;
    }
    readFailure = QueryFailure.SHARD;
    throw new ShardmapException(QueryExecutor.codeOf(List.of(e)), "cross-shard query on keyspace '"
        + request.keyspace() + "' at revision " + revision + " failed while reading shard " + p.error()
        + " (the other shards' statements were cancelled)", e);
  }

  /** Whether some shard failed and contributed no rows, or not all of its rows (partial mode only). */
  public boolean partial() {
    return partial;
  }

  /** Each part's status, in shard name order. */
  public List<Status> statuses() {
    List<Status> out = new ArrayList<>();
    for (Part p : attempt.parts) {
      out.add(new Status(p.shard, p.rows0(), p.error(), p.elapsedNanos()));
    }
    return out;
  }

  /** Cancels what still runs, ends every part's transaction and gives its connection back. Idempotent. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    ended(partial ? QueryOutcome.PARTIAL : QueryOutcome.CLOSED);
    attempt.cancelDeadline();
    try {
      merged.close();
    } finally {
      for (Part p : attempt.parts) {
        p.release();
      }
    }
  }
}
