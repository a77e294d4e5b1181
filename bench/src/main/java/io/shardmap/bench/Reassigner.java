package io.shardmap.bench;

import io.grpc.Channel;
import io.shardmap.proto.v1.ReassignRangeRequest;
import io.shardmap.proto.v1.ReassignRangeResponse;
import io.shardmap.proto.v1.ShardMapAdminServiceGrpc;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The admin write the SDK benchmarks time: ReassignRange of one range of {@link RangeMaps#KEYSPACE} (as
 * {@link RangeMaps#write} laid it out) to the next shard, cycling over the ranges. Only these writes change
 * the map, so the owners kept here are exact and the map keeps its shape (same ranges, owners rotate,
 * epochs grow).
 */
final class Reassigner {
  private final ShardMapAdminServiceGrpc.ShardMapAdminServiceBlockingStub admin;
  private final long[] starts;
  private final List<String> names;
  private final int[] owner;
  private int next;

  /** Writes through the directory server at the other end of {@code admin}. */
  Reassigner(Channel admin, int ranges, int shards) {
    this.admin = ShardMapAdminServiceGrpc.newBlockingStub(admin);
    this.starts = RangeMaps.evenStarts(ranges);
    this.names = RangeMaps.shardNames(shards);
    this.owner = new int[ranges];
    for (int i = 0; i < ranges; i++) {
      owner[i] = i % shards;
    }
  }

  private ReassignRangeRequest request() {
    int j = next % starts.length;
    String to = names.get((owner[j] + 1) % names.size());
    return ReassignRangeRequest.newBuilder().setKeyspace(RangeMaps.KEYSPACE)
        .setRange(RangeMaps.range(starts, j, to, 1).getRange()).setShard(to).build();
  }

  private void sent() {
    int j = next % starts.length;
    owner[j] = (owner[j] + 1) % names.size();
    next++;
  }

  /** Sends the next reassignment (10 s deadline) and returns its response. */
  ReassignRangeResponse send() {
    ReassignRangeRequest req = request();
    ReassignRangeResponse r = admin.withDeadlineAfter(10, TimeUnit.SECONDS).reassignRange(req);
    sent();
    return r;
  }
}
