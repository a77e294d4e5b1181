package io.shardmap.server.internal;

import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.MeteredMetaStore;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.UnitSize;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import java.util.logging.Logger;

/**
 * The keyspaces' latest sizes in etcd (docs/sizes.md, "Where sizes are kept"), so that every directory server
 * answers GetSizes alike. One set of sizes is:
 *
 * <ul>
 *   <li>its units in chunks, {@code {root}/sizes/units/{ks}/{taken}/{n}}: KeyspaceSizes messages holding only
 *       units, in position order, each at most {@value #CHUNK_BYTES} bytes of units (plus one unit: a unit is
 *       at most a few KiB, its positions being keys), so every value stays far below etcd's 1.5 MiB request
 *       limit however many units the map has (100,000 ranges of INT64 keys: about 4 MiB in 17 chunks);
 *   <li>then its head, {@code {root}/sizes/head/{ks}}: the KeyspaceSizes without units (when, exact, layout
 *       revision, per-shard totals), written with a compare on the head it replaces, together with the delete
 *       of the replaced set's chunks.
 * </ul>
 *
 * A reader reads the head, then the chunks of its {@code taken} time: they were all written before the head.
 * If they are gone (a newer set replaced them between the two reads) it reads again. A writer that lost the
 * compare to another writer deletes its own chunks. Only a writer that dies between its chunks and its head
 * leaves chunks that no head points to (at most the size of one set; docs/sizes.md says how to delete them).
 */
public final class SizeRecords {
  private static final Logger log = Logger.getLogger(SizeRecords.class.getName());
  /** Bytes of units per chunk, before the unit that crosses it. */
  static final int CHUNK_BYTES = 256 * 1024;

  private final MeteredMetaStore store;
  private final CatalogPaths paths;
  private final long timeoutMs;

  public SizeRecords(MetaStore store, CatalogPaths paths, Duration timeout, LongSupplier nanoTime, ServerMetrics metrics) {
    this.store = new MeteredMetaStore(store, metrics::etcdRequest, nanoTime);
    this.paths = paths;
    this.timeoutMs = timeout.toMillis();
  }

  /** The head (the sizes without units) and the unit chunks, in order: what {@link #write} stores. */
  static List<KeyspaceSizes> split(KeyspaceSizes sizes, int chunkBytes) {
    List<KeyspaceSizes> out = new ArrayList<>();
    out.add(sizes.toBuilder().clearUnits().build());
    KeyspaceSizes.Builder chunk = KeyspaceSizes.newBuilder();
    int bytes = 0;
    for (UnitSize u : sizes.getUnitsList()) {
      chunk.addUnits(u);
      bytes += u.getSerializedSize() + 4;
      if (bytes >= chunkBytes) {
        out.add(chunk.build());
        chunk = KeyspaceSizes.newBuilder();
        bytes = 0;
      }
    }
    if (chunk.getUnitsCount() > 0) {
      out.add(chunk.build());
    }
    return out;
  }

  /** The sizes back from a head and its chunks in order ({@link #split}'s inverse). */
  static KeyspaceSizes join(KeyspaceSizes head, List<KeyspaceSizes> chunks) {
    KeyspaceSizes.Builder b = head.toBuilder().clearUnits();
    for (KeyspaceSizes c : chunks) {
      b.addAllUnits(c.getUnitsList());
    }
    return b.build();
  }

  /** A keyspace's latest head and the etcd revision it was written at. */
  public record Head(KeyspaceSizes sizes, long modRevision) {}

  /**
   * Stores {@code sizes} as the keyspace's latest, replacing the previous set and deleting its chunks. False
   * when another writer replaced the head meanwhile: its set stands, and this one's chunks are deleted.
   */
  boolean write(KeyspaceSizes sizes) throws InterruptedException, ExecutionException, TimeoutException {
    return write(sizes, -1);
  }

  /**
   * {@link #write}, but only over the head at {@code expectRevision} (0: none): sizes taken because the head read
   * then was due do not replace one written since (a refresh's).
   */
  boolean write(KeyspaceSizes sizes, long expectRevision)
      throws InterruptedException, ExecutionException, TimeoutException {
    String ks = sizes.getKeyspace();
    String headKey = paths.sizesHead(ks);
    RangeResult old = store.get(headKey).get(timeoutMs, TimeUnit.MILLISECONDS);
    long current = old.kvs().isEmpty() ? 0 : old.kvs().get(0).modRevision();
    if (expectRevision >= 0 && current != expectRevision) {
      return false;
    }
    List<KeyspaceSizes> parts = split(sizes, CHUNK_BYTES);
    for (int i = 1; i < parts.size(); i++) {
      // One put each: together they would pass etcd's request size limit.
      Txn put = Txn.builder().put(paths.sizesUnits(ks, sizes.getTakenUnixMs(), i - 1), parts.get(i).toByteArray())
          .build();
      store.commit(put).get(timeoutMs, TimeUnit.MILLISECONDS);
    }
    Txn.Builder head = Txn.builder();
    if (old.kvs().isEmpty()) {
      head.compare(Compare.absent(headKey));
    } else {
      KeyValue kv = old.kvs().get(0);
      head.compare(Compare.modRevision(headKey, kv.modRevision()));
      long oldTaken = parse(kv).getTakenUnixMs();
      if (oldTaken != sizes.getTakenUnixMs()) {
        head.deletePrefix(paths.sizesUnitsPrefix(ks, oldTaken));
      }
    }
    head.put(headKey, parts.get(0).toByteArray());
    TxnResult r = store.commit(head.build()).get(timeoutMs, TimeUnit.MILLISECONDS);
    if (!r.succeeded()) {
      store.commit(Txn.builder().deletePrefix(paths.sizesUnitsPrefix(ks, sizes.getTakenUnixMs())).build())
          .get(timeoutMs, TimeUnit.MILLISECONDS);
      log.fine("sizes of " + ks + " taken at " + sizes.getTakenUnixMs() + " were superseded by another writer's");
      return false;
    }
    return true;
  }

  /** The latest sizes of {@code keyspace} with their units; empty when none were ever taken. */
  public Optional<KeyspaceSizes> read(String keyspace) throws InterruptedException, ExecutionException, TimeoutException {
    for (int attempt = 0; ; attempt++) {
      RangeResult h = store.get(paths.sizesHead(keyspace)).get(timeoutMs, TimeUnit.MILLISECONDS);
      if (h.kvs().isEmpty()) {
        return Optional.empty();
      }
      KeyspaceSizes head = parse(h.kvs().get(0));
      List<KeyspaceSizes> chunks = new ArrayList<>();
      RangeResult c = store.getPrefix(paths.sizesUnitsPrefix(keyspace, head.getTakenUnixMs()))
          .get(timeoutMs, TimeUnit.MILLISECONDS);
      // Keys are zero-padded chunk numbers: key order is chunk order.
      List<KeyValue> kvs = new ArrayList<>(c.kvs());
      kvs.sort((a, b) -> a.key().compareTo(b.key()));
      for (KeyValue kv : kvs) {
        chunks.add(parse(kv));
      }
      if (!chunks.isEmpty() || attempt >= 3) {
        return Optional.of(join(head, chunks));
      }
      // No chunk: a set without units (no owner could be read), or one replaced between the two reads.
      RangeResult again = store.get(paths.sizesHead(keyspace)).get(timeoutMs, TimeUnit.MILLISECONDS);
      if (!again.kvs().isEmpty() && again.kvs().get(0).modRevision() == h.kvs().get(0).modRevision()) {
        return Optional.of(head);
      }
    }
  }

  /** Every keyspace's latest head (no units: when, exact, per-shard totals), in one etcd read. */
  public List<Head> heads() throws InterruptedException, ExecutionException, TimeoutException {
    List<Head> out = new ArrayList<>();
    for (KeyValue kv : store.getPrefix(paths.sizesHeadsPrefix()).get(timeoutMs, TimeUnit.MILLISECONDS).kvs()) {
      out.add(new Head(parse(kv), kv.modRevision()));
    }
    return out;
  }

  /** Deletes every set of sizes of {@code keyspace} (it was dropped). */
  void delete(String keyspace) throws InterruptedException, ExecutionException, TimeoutException {
    store.commit(Txn.builder().delete(paths.sizesHead(keyspace)).deletePrefix(paths.sizesUnitsPrefix(keyspace))
        .build()).get(timeoutMs, TimeUnit.MILLISECONDS);
  }

  private static KeyspaceSizes parse(KeyValue kv) {
    try {
      return KeyspaceSizes.parseFrom(kv.value());
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException("etcd key " + kv.key() + " holds no KeyspaceSizes: " + e.getMessage(), e);
    }
  }
}
