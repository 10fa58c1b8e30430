"""tf_attnrec.data"""
