package io.shardmap.cli;

import io.shardmap.proto.v1.ReassignBucketRequest;
import io.shardmap.proto.v1.ReassignBucketResponse;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "bucket", description = "Change one bucket of a hash keyspace.",
    synopsisSubcommandLabel = "COMMAND", subcommands = {BucketCommands.Reassign.class})
final class BucketCommands {

  @Command(name = "reassign", description = "Give bucket BUCKET (0-based) to SHARD; moves 1/N of the keys.")
  static final class Reassign extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "BUCKET")
    int bucket;

    @Parameters(index = "2", paramLabel = "SHARD")
    String shard;

    @Option(names = "--expected-epoch", paramLabel = "EPOCH",
        description = "Fail with FAILED_PRECONDITION unless the bucket's epoch is still this.")
    long expectedEpoch;

    @Override
    void execute(ShardmapCtl ctl) {
      if (bucket < 0) {
        throw usage("BUCKET is a 0-based bucket index, got " + bucket);
      }
      ReassignBucketResponse r = ctl.admin().reassignBucket(ReassignBucketRequest.newBuilder()
          .setKeyspace(keyspace).setBucket(bucket).setShard(shard).setExpectedEpoch(expectedEpoch).build());
      if (printedJson(r)) {
        return;
      }
      line("reassigned bucket " + bucket + " of " + keyspace + " (revision " + r.getRevision() + ")");
      table(List.of("BUCKET", "SHARD", "EPOCH"),
          List.of(List.of(Integer.toString(bucket), r.getBucket().getShard(), Long.toString(r.getBucket().getEpoch()))));
    }
  }
}
