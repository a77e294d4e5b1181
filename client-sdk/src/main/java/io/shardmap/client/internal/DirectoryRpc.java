package io.shardmap.client.internal;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.shardmap.core.Backoff;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.BatchLookupRequest;
import io.shardmap.proto.v1.BatchLookupResponse;
import io.shardmap.proto.v1.EtcdQuorum;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.LookupRequest;
import io.shardmap.proto.v1.LookupResponse;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;

/**
 * Single-key questions to the directory servers: the lazy directory cache's misses (BatchLookup, whose
 * answer says whether the fallback answered) and {@code ShardmapClient.lookupRemote} (Lookup). Each call
 * starts at the server the watch stream currently follows (the one most likely up and closest to the
 * client's revision), moves to the next server on failure, and gives up when the RPC timeout has passed
 * in total, not per attempt.
 */
public final class DirectoryRpc implements LazyDirectory.Fetcher {
  private final List<String> targets;
  private final List<ManagedChannel> channels;
  private final IntSupplier preferredTarget;
  private final long timeoutNanos;
  /** Pauses between rounds over all targets; each question takes its own {@link Backoff.Attempts}. */
  private final Backoff backoff;
  private final LongSupplier nanoTime;

  public DirectoryRpc(List<String> targets, List<ManagedChannel> channels, IntSupplier preferredTarget,
                      long timeoutNanos, Backoff backoff, LongSupplier nanoTime) {
    this.targets = targets;
    this.channels = channels;
    this.preferredTarget = preferredTarget;
    this.timeoutNanos = timeoutNanos;
    this.backoff = backoff;
    this.nanoTime = nanoTime;
  }

  /** One attempt against one server: an answer, or {@link Behind} when that server is too old. */
  private interface Attempt<T> {
    T run(ShardMapServiceGrpc.ShardMapServiceBlockingStub stub, String target);
  }

  /**
   * One attempt of a question to another service of the directory servers (the id service): called with the
   * channel of one server, the time left of the call's budget and that server's target. A
   * {@link StatusRuntimeException} from it counts as that server failing (INVALID_ARGUMENT,
   * FAILED_PRECONDITION and INTERNAL end the call at once, as for map questions); any other exception ends
   * the call and reaches the caller.
   */
  public interface ChannelAttempt<T> {
    T run(ManagedChannel channel, long leftNanos, String target);
  }

  /**
   * Asks any directory server: from the preferred one, failing over to the next on failure, with the
   * rounds' backoff, until one answers or {@code timeoutNanos} has passed in total (then UNAVAILABLE naming
   * {@code what} and the last failure). NOT_FOUND is believed once a whole round said nothing else.
   */
  public <T> T callAny(String what, long timeoutNanos, ChannelAttempt<T> attempt) {
    return call(what, true, timeoutNanos, attempt);
  }

  /** The server answered from a snapshot older than the caller needs. */
  private static final class Behind extends RuntimeException {
    final Object answer;

    Behind(String message, Object answer) {
      super(message, null, false, false);
      this.answer = answer;
    }
  }

  @Override
  public LazyDirectory.Answer fetch(String keyspace, KeyType type, byte[] key, long atLeastRevision) {
    BatchLookupRequest.Builder req = BatchLookupRequest.newBuilder().setKeyspace(keyspace);
    if (type == KeyType.KEY_TYPE_INT64) {
      req.addIntKeys(Keys.decodeInt64(key));
    } else {
      req.addBytesKeys(ByteString.copyFrom(key));
    }
    BatchLookupRequest request = req.build();
    String what = "cannot route key " + Keys.describe(type, key) + " of directory keyspace '" + keyspace
        + "' (not in the client's cache)";
    return call(what, true, (stub, target) -> {
      BatchLookupResponse r = stub.batchLookup(request);
      if (r.getFromFallbackCount() != 1 || r.getShardIndexesCount() != 1 || r.getEpochsCount() != 1) {
        // A server from before lazy directories: without from_fallback the answer cannot be cached safely.
        throw new Behind(target + " does not say whether the fallback answered (an older server)", null);
      }
      long revision = r.getFreshness().getRevision();
      if (revision < atLeastRevision) {
        throw new Behind(target + " is at revision " + revision + ", behind the client's " + atLeastRevision,
            null);
      }
      int idx = r.getShardIndexes(0);
      Route route = idx < 0 ? null : new Route(r.getShards(idx), r.getEpochs(0), null, 0);
      return new LazyDirectory.Answer(route, r.getFromFallback(0), revision);
    });
  }

  /**
   * Routes one key on a directory server. Prefers a server whose snapshot is at least
   * {@code preferAtLeastRevision} (the caller's own map: an older answer is no news); if every server
   * that answered in a full round is behind, returns the newest of those answers.
   */
  public Route lookup(String keyspace, Key key, long preferAtLeastRevision) {
    KeyType type = key.getValueCase() == Key.ValueCase.INT_KEY ? KeyType.KEY_TYPE_INT64 : KeyType.KEY_TYPE_BYTES;
    LookupRequest request = LookupRequest.newBuilder().setKeyspace(keyspace).setKey(key).build();
    String what = "cannot look up key " + describe(key) + " of keyspace '" + keyspace + "' on a directory server";
    LookupResponse r = call(what, false, (stub, target) -> {
      LookupResponse resp = stub.lookup(request);
      long revision = resp.getFreshness().getRevision();
      if (revision < preferAtLeastRevision) {
        throw new Behind(target + " is at revision " + revision + ", behind the client's "
            + preferAtLeastRevision, resp);
      }
      if (resp.getFreshness().getEtcdQuorum() != EtcdQuorum.ETCD_QUORUM_REACHABLE) {
        // Cut off from etcd (or not saying: a server from before etcd_quorum): its answer is only as new as
        // its last watch event, which is exactly what a caller asking past its own watched map (a stalled
        // stream) cannot use. Prefer a server that is not.
        throw new Behind(target + (resp.getFreshness().getEtcdQuorum() == EtcdQuorum.ETCD_QUORUM_UNREACHABLE
            ? " cannot reach etcd (its map is " + resp.getFreshness().getAgeMillis() + " ms old)"
            : " does not say whether it reaches etcd (a server from before etcd_quorum)"), resp);
      }
      return resp;
    });
    io.shardmap.proto.v1.Route p = r.getRoute();
    KeyRange range = p.hasRange() ? KeyRange.fromProto(type, p.getRange(), "route.range") : null;
    return new Route(p.getShard(), p.getEpoch(), range, 0);
  }

  /**
   * The cluster's cross-shard transaction namespace ({@code io.shardmap.core.TxnId}), as a directory server
   * says; every server of one cluster says the same.
   */
  public String txnNamespace() {
    return call("cannot learn the cluster's transaction namespace from a directory server", true,
        (stub, target) -> stub.getClusterInfo(io.shardmap.proto.v1.GetClusterInfoRequest.getDefaultInstance()))
        .getTxnNamespace();
  }

  /**
   * The reference table records of {@code keyspace} (docs/reference-sdk.md), as a directory server read
   * them from etcd with a quorum read: any server's answer is as new as etcd itself.
   */
  public io.shardmap.proto.v1.ListReferenceTablesResponse referenceTables(String keyspace) {
    io.shardmap.proto.v1.ListReferenceTablesRequest request =
        io.shardmap.proto.v1.ListReferenceTablesRequest.newBuilder().setKeyspace(keyspace).build();
    return call("cannot read the reference tables of keyspace '" + keyspace + "' from a directory server", true,
        (stub, target) -> stub.listReferenceTables(request));
  }

  private static String describe(Key key) {
    return switch (key.getValueCase()) {
      case INT_KEY -> Long.toString(key.getIntKey());
      case STRING_KEY -> "'" + key.getStringKey() + "'";
      case BYTES_KEY -> "0x" + Keys.hex(key.getBytesKey().toByteArray());
      default -> "(none)";
    };
  }

  /**
   * Tries the servers in turn from the preferred one until one answers or the timeout passes. With
   * {@code strict}, answers from servers that are behind are never returned; without it, after one full
   * round the newest such answer is.
   */
  private <T> T call(String what, boolean strict, Attempt<T> attempt) {
    return call(what, strict, timeoutNanos, (channel, left, target) -> attempt.run(
        ShardMapServiceGrpc.newBlockingStub(channel).withDeadlineAfter(left, TimeUnit.NANOSECONDS), target));
  }

  @SuppressWarnings("unchecked")
  private <T> T call(String what, boolean strict, long timeoutNanos, ChannelAttempt<T> attempt) {
    int n = channels.size();
    long start = nanoTime.getAsLong();
    long deadline = start + timeoutNanos;
    int first = Math.floorMod(preferredTarget.getAsInt(), n);
    Backoff.Attempts attempts = backoff.start();
    String last = "no server tried";
    // A server that has not seen a new keyspace yet says NOT_FOUND too: believe NOT_FOUND once a whole
    // round of servers said nothing else (unreachable ones do not count as disagreeing).
    String notFound = null;
    boolean otherAnswer = false;
    T behindBest = null;
    long behindBestRevision = -1;
    for (int i = 0; ; i++) {
      long left = deadline - nanoTime.getAsLong();
      if (left <= 0) {
        break;
      }
      int t = (first + i) % n;
      String target = targets.get(t);
      try {
        return attempt.run(channels.get(t), left, target);
      } catch (Behind b) {
        last = b.getMessage();
        otherAnswer = true;
        if (b.answer instanceof LookupResponse lr && lr.getFreshness().getRevision() > behindBestRevision) {
          behindBest = (T) b.answer;
          behindBestRevision = lr.getFreshness().getRevision();
        }
      } catch (StatusRuntimeException e) {
        Status.Code code = e.getStatus().getCode();
        String desc = e.getStatus().getDescription();
        if (code == Status.Code.INVALID_ARGUMENT || code == Status.Code.FAILED_PRECONDITION
            || code == Status.Code.INTERNAL) {
          // The question itself is wrong (or the stored map is): another server would say the same.
          throw new ShardmapException(ErrorCode.valueOf(code.name()), what + ": " + target + " said: " + desc);
        }
        last = target + ": " + code + (desc == null ? "" : " " + desc);
        if (code == Status.Code.NOT_FOUND) {
          notFound = target + " said: " + desc;
        }
      }
      if ((i + 1) % n == 0) {
        if (notFound != null && !otherAnswer) {
          throw new ShardmapException(ErrorCode.NOT_FOUND, what + ": " + notFound);
        }
        notFound = null;
        otherAnswer = false;
        if (!strict && behindBest != null) {
          return behindBest;
        }
        // Every server failed once: back off before the next round, within the deadline.
        long pause = Math.min(attempts.nextPauseNanos(), deadline - nanoTime.getAsLong());
        if (pause > 0) {
          try {
            TimeUnit.NANOSECONDS.sleep(pause);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ShardmapException(ErrorCode.UNAVAILABLE, what + ": interrupted (last: " + last + ")", e);
          }
        }
      }
    }
    if (behindBest != null) {
      return behindBest;
    }
    throw new ShardmapException(ErrorCode.UNAVAILABLE, what + ": no directory server of " + targets
        + " answered within " + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms (last: " + last + ")");
  }
}
