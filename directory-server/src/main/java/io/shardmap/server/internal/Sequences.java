package io.shardmap.server.internal;

import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.CatalogTxns;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.catalog.StoreErrors;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Names;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.CreateSequenceRequest;
import io.shardmap.proto.v1.CreateSequenceResponse;
import io.shardmap.proto.v1.GetSequenceRequest;
import io.shardmap.proto.v1.GetSequenceResponse;
import io.shardmap.proto.v1.ListSequencesResponse;
import io.shardmap.proto.v1.ReserveSequenceBlockRequest;
import io.shardmap.proto.v1.ReserveSequenceBlockResponse;
import io.shardmap.proto.v1.Sequence;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Dense sequences (docs/ids.md, "Dense sequences"): one etcd key per sequence holding the next number not yet
 * in any block, raised by {@link #reserve} with one compare-and-set through {@link CatalogTxns}.
 *
 * <p>Guarantees: {@code next_value} only grows, and a block is handed out only by the commit that raised
 * {@code next_value} past it, so no number is ever in two blocks. Every reservation writes bytes no other
 * reservation writes (a random {@code last_token}), so when etcd leaves a commit's
 * outcome unknown, CatalogTxns' read-back tells "this one applied" from "another one applied" and never returns
 * a block some other reservation got. A retry of the last request_id gets its block back (no second block)
 * when no other reservation came in between. Refusals change nothing. The server keeps no state.
 */
public final class Sequences {
  public static final int DEFAULT_BLOCK_SIZE = 1_000;
  public static final int MAX_BLOCK_SIZE = 1_000_000;
  /** The largest number a sequence hands out: 2^63-2, so that next_value (one above it) stays an int64. */
  public static final long MAX_VALUE = Long.MAX_VALUE - 1;
  /** Lost races before a reservation gives up with ABORTED: only many clients reserving at once cause them. */
  static final int MAX_ATTEMPTS = 64;

  private final MeteredMetaStore store;
  private final CatalogPaths paths;
  private final Duration timeout;
  private final CatalogTxns txns;
  private final LongSupplier wallClockMillis;

  public Sequences(MetaStore store, CatalogPaths paths, Duration timeout, LongSupplier nanoTime,
                   LongSupplier wallClockMillis, ServerMetrics metrics) {
    this.store = new MeteredMetaStore(store, metrics::etcdRequest, nanoTime);
    this.paths = paths;
    this.timeout = timeout;
    this.wallClockMillis = wallClockMillis;
    this.txns = CatalogTxns.builder(this.store).timeout(timeout).maxAttempts(MAX_ATTEMPTS).nanoTime(nanoTime)
        .onUnknownOutcome(e -> new ShardmapException(ErrorCode.UNAVAILABLE, e.getMessage() + " (no block was "
            + "handed out; a retry with the same request_id gets the block if it was reserved)", e))
        .build();
  }

  public CreateSequenceResponse create(CreateSequenceRequest r) {
    String name = name(r.getName());
    long start = r.getStart() == 0 ? 1 : r.getStart();
    if (start < 1 || start > MAX_VALUE) {
      throw ShardmapException.invalid("start", "must be 0 (meaning 1) or within [1, " + MAX_VALUE + "]; got "
          + r.getStart());
    }
    int block = r.getDefaultBlockSize() == 0 ? DEFAULT_BLOCK_SIZE : r.getDefaultBlockSize();
    if (block < 1 || block > MAX_BLOCK_SIZE) {
      throw ShardmapException.invalid("default_block_size", "must be 0 (meaning " + DEFAULT_BLOCK_SIZE
          + ") or within [1, " + MAX_BLOCK_SIZE + "]; got " + r.getDefaultBlockSize());
    }
    String key = paths.sequence(name);
    Sequence seq = Sequence.newBuilder().setName(name).setStart(start).setNextValue(start)
        .setDefaultBlockSize(block).setCreatedUnixMs(wallClockMillis.getAsLong()).build();
    return txns.update("CreateSequence", () -> {
      if (read(key) != null) {
        throw new ShardmapException(ErrorCode.ALREADY_EXISTS, "name: sequence '" + name + "' already exists");
      }
      return new CatalogTxns.Plan<>(Txn.builder().compare(Compare.absent(key)).put(key, seq.toByteArray()).build(),
          rev -> CreateSequenceResponse.newBuilder().setSequence(seq).setRevision(rev).build());
    }, CatalogTxns.FRESH_READS);
  }

  public GetSequenceResponse get(GetSequenceRequest r) {
    String name = name(r.getName());
    KeyValue kv = read(paths.sequence(name));
    if (kv == null) {
      throw notFound(name);
    }
    return GetSequenceResponse.newBuilder().setSequence(parse(kv)).setRevision(kv.modRevision()).build();
  }

  public ListSequencesResponse list() {
    RangeResult rr;
    try {
      rr = await(store.as("sequence_list").getPrefix(paths.sequencesPrefix()));
    } catch (Exception e) {
      throw StoreErrors.fromStoreRead("ListSequences", e);
    }
    ListSequencesResponse.Builder out = ListSequencesResponse.newBuilder();
    for (KeyValue kv : rr.kvs()) {
      out.addSequences(parse(kv));
    }
    return out.build();
  }

  public ReserveSequenceBlockResponse reserve(ReserveSequenceBlockRequest r) {
    String name = name(r.getName());
    long count = r.getCount();
    if (count < 0 || count > MAX_BLOCK_SIZE) {
      throw ShardmapException.invalid("count", "must be 0 (the sequence's default_block_size) or within [1, "
          + MAX_BLOCK_SIZE + "]; got " + count);
    }
    String requestId = r.getRequestId().isEmpty() ? "" : Names.processId("request_id", r.getRequestId());
    String key = paths.sequence(name);
    ReserveSequenceBlockResponse[] replay = new ReserveSequenceBlockResponse[1];
    ReserveSequenceBlockResponse done = txns.update("ReserveSequenceBlock", () -> {
      KeyValue kv = read(key);
      if (kv == null) {
        throw notFound(name);
      }
      Sequence seq = parse(kv);
      long n = count == 0 ? seq.getDefaultBlockSize() : count;
      if (!requestId.isEmpty() && requestId.equals(seq.getLastRequestId())
          && seq.getLastLast() - seq.getLastFirst() + 1 == n) {
        // A retry of the last reservation (its answer was lost): the same block, nothing written.
        replay[0] = ReserveSequenceBlockResponse.newBuilder().setFirst(seq.getLastFirst()).setLast(seq.getLastLast())
            .setRevision(kv.modRevision()).setReplayed(true).build();
        return null;
      }
      long first = seq.getNextValue();
      long left = first > MAX_VALUE ? 0 : MAX_VALUE - first + 1;
      if (n > left) {
        throw ShardmapException.precondition("sequence '" + name + "' has " + left + " numbers left below "
            + "2^63-1 (next_value " + first + "): a block of " + n + " would overflow int64; nothing was reserved");
      }
      long last = first + n - 1;
      Sequence next = seq.toBuilder().setNextValue(last + 1).setLastRequestId(requestId).setLastFirst(first)
          .setLastLast(last).setReservations(seq.getReservations() + 1).setLastToken(UUID.randomUUID().toString())
          .build();
      return new CatalogTxns.Plan<>(Txn.builder().compare(Compare.modRevision(key, kv.modRevision()))
          .put(key, next.toByteArray()).build(),
          rev -> ReserveSequenceBlockResponse.newBuilder().setFirst(first).setLast(last).setRevision(rev).build());
    }, CatalogTxns.FRESH_READS);
    return done != null ? done : replay[0];
  }

  private static ShardmapException notFound(String name) {
    return ShardmapException.notFound("sequence '" + name + "' does not exist (create it with CreateSequence: "
        + "shardmapctl sequence create " + name + ")");
  }

  private static String name(String n) {
    return io.shardmap.core.Names.sequence("name", n);
  }

  private static Sequence parse(KeyValue kv) {
    try {
      return Sequence.parseFrom(kv.value());
    } catch (InvalidProtocolBufferException e) {
      throw new ShardmapException(ErrorCode.INTERNAL, "etcd key " + kv.key() + " holds no Sequence record", e);
    }
  }

  private KeyValue read(String key) {
    List<KeyValue> kvs;
    try {
      kvs = await(store.as("sequence_read").get(key)).kvs();
    } catch (Exception e) {
      throw StoreErrors.fromStoreRead("reading sequence " + key, e);
    }
    return kvs.isEmpty() ? null : kvs.get(0);
  }

  private <T> T await(CompletableFuture<T> f) throws Exception {
    try {
      return f.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw e;
    } catch (Exception e) {
      f.cancel(true);
      throw e;
    }
  }
}
