// Not run by default: prints the facts of every sample (`test_xml "[facts-dump]"`).
#include "xml_test_util.hpp"

#include <catch2/catch.hpp>

#include <cstdio>

namespace {
void print_party(const char* what, const broker::party_ref& p) {
    std::printf("  %s: lvl1 her=%s name=%s orgnr=%s | lvl2 her=%s name=%s person=%d\n", what, p.lvl1_her.c_str(),
                p.lvl1_name.c_str(), p.lvl1_orgnr.c_str(), p.lvl2_her.c_str(), p.lvl2_name.c_str(),
                p.lvl2_is_person);
}
} // namespace

TEST_CASE("facts dump", "[.][facts-dump]") {
    if (!testing::have_interop())
        return;
    for (const auto& rel : xmltest::message_samples()) {
        auto r = xmltest::v().validate(xmltest::sample(rel), rel);
        const auto& f = r.facts;
        std::printf("%s [%s]\n  root=%s content=%s type=%s (%s) mig=%s gen=%s id=%s ack=%d docs=%d ff=%d\n",
                    rel.c_str(), broker::xml::apprec_code(r.v), f.root_ns.c_str(), f.content_ns.c_str(),
                    f.msg_type.c_str(), f.msg_type_dn.c_str(), f.mig_version.c_str(), f.gen_date.c_str(),
                    f.msg_id.c_str(), f.ack_requested, f.document_count, f.from_fellesformat);
        print_party("sender", f.sender);
        print_party("receiver", f.receiver);
        std::printf("  patient=%s/%s conv=%s/%s\n", f.patient_id.c_str(), f.patient_id_type.c_str(),
                    f.ref_to_parent.c_str(), f.ref_to_conversation.c_str());
        if (f.is_apprec()) {
            std::printf("  status=%s orig=%s/%s/%s errors=%zu\n", f.apprec_status.c_str(), f.original_msg_type.c_str(),
                        f.original_issue_date.c_str(), f.original_msg_id.c_str(), f.apprec_errors.size());
            for (auto& e : f.apprec_errors)
                std::printf("    error %s %s %s %s\n", e.code.c_str(), e.description.c_str(), e.code_system.c_str(),
                            e.origin.c_str());
        }
    }
}
