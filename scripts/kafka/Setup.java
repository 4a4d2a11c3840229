// Prepares a freshly started test Kafka cluster through the Admin API, in one JVM:
// waits until every expected broker is registered, then creates the ACLs listed in a plan file.
//
//   java -cp 'lib/*' Setup.java BOOTSTRAP BROKERS PLAN_FILE
//
// Plan file, one line each (blank lines and # comments ignored):
//   acl PRINCIPAL RESOURCE_TYPE PATTERN_TYPE NAME OPERATION[,OPERATION...]
//   e.g. acl User:reader TOPIC PREFIXED test. READ,DESCRIBE
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class Setup {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        int brokers = Integer.parseInt(args[1]);
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        try (Admin admin = Admin.create(props)) {
            while (true) {
                try {
                    int seen = admin.describeCluster().nodes().get(10, TimeUnit.SECONDS).size();
                    if (seen >= brokers) break;
                } catch (Exception e) {
                    // not up yet
                }
                if (System.nanoTime() > deadline) {
                    System.err.println("setup: " + bootstrap + " did not register " + brokers + " broker(s) within 60 s");
                    System.exit(1);
                }
                Thread.sleep(200); // polling interval while waiting for the brokers, bounded by the deadline
            }
            if (args.length < 3) return;
            List<AclBinding> acls = new ArrayList<>();
            for (String raw : Files.readAllLines(Path.of(args[2]))) {
                String line = raw.strip();
                if (line.isEmpty() || line.startsWith("#")) continue;
                String[] f = line.split("\\s+");
                if (!f[0].equals("acl") || f.length != 6) throw new IllegalArgumentException("bad plan line: " + line);
                ResourcePattern pattern = new ResourcePattern(ResourceType.valueOf(f[2]), f[4], PatternType.valueOf(f[3]));
                for (String op : f[5].split(",")) {
                    acls.add(new AclBinding(pattern, new AccessControlEntry(f[1], "*", AclOperation.valueOf(op), AclPermissionType.ALLOW)));
                }
            }
            admin.createAcls(acls).all().get(30, TimeUnit.SECONDS);
            System.out.println("setup: " + acls.size() + " ACL entries on " + bootstrap);
        }
    }
}
